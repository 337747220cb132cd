package charts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cbroglie/mustache"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The files of a Universe package (packaging version 4.0).
const (
	PackageFile  = "package.json"
	ConfigFile   = "config.json"
	ResourceFile = "resource.json"
	MarathonFile = "marathon.json.mustache"
)

// UniversePackage is a DC/OS Universe package read from a directory.
type UniversePackage struct {
	Dir      string
	Package  map[string]any // package.json
	Config   map[string]any // config.json: the JSON schema of the install options
	Resource map[string]any // resource.json
	Template string         // marathon.json.mustache

	schema *jsonschema.Schema
}

// LoadUniversePackage reads and parses the package in dir and compiles its config.json schema.
func LoadUniversePackage(dir string) (*UniversePackage, error) {
	p := &UniversePackage{Dir: dir}
	for name, dst := range map[string]*map[string]any{PackageFile: &p.Package, ConfigFile: &p.Config, ResourceFile: &p.Resource} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading universe package: %w", err)
		}
		v, err := decodeJSON(data)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a JSON object, got %T", name, v)
		}
		*dst = obj
	}
	tmpl, err := os.ReadFile(filepath.Join(dir, MarathonFile))
	if err != nil {
		return nil, fmt.Errorf("reading universe package: %w", err)
	}
	p.Template = string(tmpl)

	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///"+ConfigFile, p.Config); err != nil {
		return nil, fmt.Errorf("adding %s: %w", ConfigFile, err)
	}
	if p.schema, err = c.Compile("file:///" + ConfigFile); err != nil {
		return nil, fmt.Errorf("compiling %s as a JSON schema: %w", ConfigFile, err)
	}
	return p, nil
}

// decodeJSON parses one JSON value, keeping numbers as json.Number so integers stay integers.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// Defaults returns the option document made of config.json's defaults, nested like its properties: a
// property with a "default" contributes that value, one without contributes the defaults of its own
// properties (Cosmos' extractDefaultsFromSchema).
func (p *UniversePackage) Defaults() map[string]any {
	return schemaDefaults(p.Config)
}

func schemaDefaults(schema map[string]any) map[string]any {
	out := map[string]any{}
	props, _ := schema["properties"].(map[string]any)
	for name, raw := range props {
		prop, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		if d, ok := prop["default"]; ok {
			out[name] = d
		} else if _, ok := prop["properties"].(map[string]any); ok {
			out[name] = schemaDefaults(prop)
		}
	}
	return out
}

// Merge deep-merges overlay onto base: objects merge key by key, anything else in overlay replaces base.
// Neither argument is modified.
func Merge(base, overlay map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range overlay {
		if bo, ok := out[k].(map[string]any); ok {
			if oo, ok := v.(map[string]any); ok {
				out[k] = Merge(bo, oo)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// Options merges user options onto config.json's defaults and validates the result against config.json,
// as `dcos package install --options` does. user is JSON-shaped (decode it with json.Number or float64).
func (p *UniversePackage) Options(user map[string]any) (map[string]any, error) {
	opts := Merge(p.Defaults(), user)
	// Round-trip through JSON so Go values (int, []string...) become what the validator expects.
	data, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("encoding options: %w", err)
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("decoding options: %w", err)
	}
	if err := p.schema.Validate(v); err != nil {
		return nil, fmt.Errorf("options do not match %s: %w", ConfigFile, err)
	}
	return v.(map[string]any), nil
}

// RenderMarathon renders marathon.json.mustache for the user options the way Cosmos does: options are
// merged onto config.json's defaults and validated, resource.json is added under "resource", strings are
// JSON-escaped without their quotes (array elements keep them), nothing is HTML-escaped, and the result
// must be one JSON object. It returns that object and the rendered text.
func (p *UniversePackage) RenderMarathon(user map[string]any) (map[string]any, string, error) {
	opts, err := p.Options(user)
	if err != nil {
		return nil, "", err
	}
	ctx := Merge(opts, map[string]any{"resource": p.Resource})
	tmpl, err := mustache.ParseStringRaw(p.Template, true)
	if err != nil {
		return nil, "", fmt.Errorf("parsing %s: %w", MarathonFile, err)
	}
	text, err := tmpl.Render(mustacheContext(ctx, false))
	if err != nil {
		return nil, "", fmt.Errorf("rendering %s: %w", MarathonFile, err)
	}
	v, err := decodeJSON([]byte(text))
	if err != nil {
		return nil, text, fmt.Errorf("rendered %s is not JSON: %w", MarathonFile, err)
	}
	app, ok := v.(map[string]any)
	if !ok {
		return nil, text, fmt.Errorf("rendered %s is a %T, want a JSON object", MarathonFile, v)
	}
	return app, text, nil
}

// TemplateVariables lists every name marathon.json.mustache looks up (sections and variables, dotted,
// in template order), so tests can check each one is defined by config.json or resource.json.
func (p *UniversePackage) TemplateVariables() ([]string, error) {
	tmpl, err := mustache.ParseStringRaw(p.Template, true)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", MarathonFile, err)
	}
	var names []string
	var walk func([]mustache.Tag)
	walk = func(tags []mustache.Tag) {
		for _, t := range tags {
			switch t.Type() {
			case mustache.Variable, mustache.Section, mustache.InvertedSection:
				names = append(names, t.Name())
			}
			if t.Type() == mustache.Section || t.Type() == mustache.InvertedSection {
				walk(t.Tags())
			}
		}
	}
	walk(tmpl.Tags())
	return names, nil
}

// Lookup finds a dotted name in a nested option document.
func Lookup(doc map[string]any, dotted string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// mustacheContext converts JSON values the way Cosmos hands them to mustache.java: a string becomes its
// JSON encoding without the surrounding quotes (with them inside an array), an integral number an int,
// other numbers a float64.
func mustacheContext(v any, inArray bool) any {
	switch x := v.(type) {
	case string:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(x) // a string always encodes
		s := strings.TrimSuffix(buf.String(), "\n")
		if !inArray {
			s = s[1 : len(s)-1]
		}
		return s
	case json.Number:
		if i, err := x.Int64(); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			return int(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mustacheContext(e, true)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = mustacheContext(e, false)
		}
		return out
	default:
		return v
	}
}
