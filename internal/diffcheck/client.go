package diffcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
)

// answer is an HTTP response reduced to what the scenario records.
type answer struct {
	Status      int
	ContentType string
	Body        []byte
	Header      http.Header
}

// doc decodes a JSON body (numbers kept as json.Number).
func (a answer) doc() (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(a.Body))
	d.UseNumber()
	err := d.Decode(&m)
	return m, err
}

// client talks plain HTTP to one master; redirects are not followed, so a 307 is seen as Mesos sends it.
type client struct {
	base              *url.URL
	principal, secret string
	hc                *http.Client
}

func newClient(base *url.URL, principal, secret string, timeout time.Duration) *client {
	return &client{base: base, principal: principal, secret: secret, hc: &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) url(path string) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String()
}

// do sends a request; body nil means none. header values "" are left out.
func (c *client) do(ctx context.Context, method, rawURL string, header map[string]string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if c.principal != "" {
		req.SetBasicAuth(c.principal, c.secret)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Mesos-Stream-Id") != "" {
		// An event stream never ends: keep its first record only.
		b, err := readFirstRecord(bufio.NewReader(resp.Body))
		return answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b, Header: resp.Header}, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b, Header: resp.Header}, nil
}

// readFirstRecord reads one RecordIO record, keeping its framing ("len\n" + data).
func readFirstRecord(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return []byte(line), err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n <= 0 || n > 8<<20 {
		return []byte(line), fmt.Errorf("bad RecordIO length %q", line)
	}
	data := make([]byte, n)
	_, err = io.ReadFull(br, data)
	return append([]byte(line), data...), err
}

// marshal encodes a mesos-go message as Mesos' JSON, without the nulls the generated code writes
// for unset fields.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // mesos-go messages always encode
	}
	var doc any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		panic(err)
	}
	out, err := json.Marshal(dropNulls(doc))
	if err != nil {
		panic(err)
	}
	return out
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = dropNulls(e)
			}
		}
	case []any:
		for i := range x {
			x[i] = dropNulls(x[i])
		}
	}
	return v
}
