// Package mesosjson reads Mesos API request bodies as a Mesos master or agent reads them: JSON with
// stout's JSON::parse (picojson underneath) and its error texts, converted into a protobuf message
// with stout's protobuf::parse (field by field, in the order of the JSON object's keys), required
// fields named as protobuf's InitializationErrorString names them, and presence checks on raw
// protobuf encodings. Both the simulated master and the simulated agent use it, so that their
// answers to malformed calls are Mesos' own.
package mesosjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Parse parses a JSON document as stout's JSON::parse does (picojson underneath), with its error
// texts: "syntax error at line N near: <rest of that line from the offending character>", the refusal
// of trailing characters and "Value out of range" for a number beyond a double. Where Go's parser and
// picojson stop at different characters the "near" text can differ; the prefix and the line are the
// same. Numbers are json.Number.
func Parse(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	offset := int64(len(b))
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Error() != "unexpected end of JSON input" {
			offset = se.Offset - 1 // picojson reports from the offending character on
		}
	}
	// stout's picojson context refuses a value nested deeper than 200 arrays and objects, reporting
	// from the character after the bracket that goes too deep.
	scanned := offset
	if err == nil {
		scanned = dec.InputOffset()
	}
	if d := tooDeep(b[:scanned]); d >= 0 {
		offset, err = int64(d), errors.New("too deep")
	}
	if err != nil {
		line := 1 + bytes.Count(b[:offset], []byte("\n"))
		rest := b[offset:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[:i]
		}
		near := make([]byte, 0, len(rest))
		for _, c := range rest {
			if c >= ' ' {
				near = append(near, c)
			}
		}
		return nil, fmt.Errorf("syntax error at line %d near: %s", line, near)
	}
	end := dec.InputOffset()
	last := bytes.TrimRight(b, " \t\n\r")
	if int64(len(last)) > end {
		return nil, fmt.Errorf("Parsed JSON included non-whitespace trailing characters: %s", b[end:len(last)])
	}
	// picojson refuses a double that is not finite (an overflow_error stout reports so).
	if outOfRange(v) {
		return nil, errors.New("Value out of range")
	}
	return v, nil
}

func outOfRange(v any) bool {
	switch x := v.(type) {
	case json.Number:
		_, err := strconv.ParseFloat(string(x), 64)
		return err != nil
	case []any:
		for _, e := range x {
			if outOfRange(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if outOfRange(e) {
				return true
			}
		}
	}
	return false
}

// maxDepth is stout's STOUT_JSON_MAX_DEPTH.
const maxDepth = 200

// tooDeep is the offset after the first '[' or '{' of b nested deeper than maxDepth, or -1.
func tooDeep(b []byte) int {
	depth, inString, escaped := 0, false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > maxDepth {
				return i + 1
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return -1
}

// number is stout's JSON::Number: picojson makes an integer literal that fits an int64 an int64,
// any other number a double.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func toNumber(n json.Number) number {
	s := string(n)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return number{isInt: true, i: i}
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	if math.IsInf(f, 0) {
		f = 0 // refused by Parse already
	}
	return number{f: f}
}
