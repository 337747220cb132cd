package charts

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Dockerfile is a parsed Dockerfile: the global ARGs before the first FROM, then one Stage per FROM.
// Docker cannot run here, so this reader is what lets tests check stage names, targets and users.
type Dockerfile struct {
	GlobalArgs map[string]string // ARG name -> default ("" when none)
	Stages     []*Stage
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	Name         string // the "AS" name, lowercased; "" when unnamed
	Base         string // image or stage reference, unexpanded
	Platform     string // --platform value
	Line         int
	Instructions []Instruction
}

// Instruction is one instruction with its continuation lines joined.
type Instruction struct {
	Cmd   string   // upper-case keyword: RUN, COPY, USER...
	Flags []string // leading --flags (e.g. --from=build)
	Args  string   // the rest, as written
	Line  int      // line of the keyword
}

// ParseDockerfileFile parses the Dockerfile at path.
func ParseDockerfileFile(path string) (*Dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening Dockerfile: %w", err)
	}
	defer f.Close()
	d, err := ParseDockerfile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

var (
	fromArgs    = regexp.MustCompile(`(?i)^(\S+)(?:\s+as\s+([a-z][a-z0-9_.-]*))?$`)
	knownCmds   = map[string]bool{"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true, "FROM": true, "HEALTHCHECK": true, "LABEL": true, "MAINTAINER": true, "ONBUILD": true, "RUN": true, "SHELL": true, "STOPSIGNAL": true, "USER": true, "VOLUME": true, "WORKDIR": true}
	argVariable = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
)

// ParseDockerfile reads a Dockerfile with the default escape character (\).
func ParseDockerfile(r io.Reader) (*Dockerfile, error) {
	d := &Dockerfile{GlobalArgs: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	var (
		lineNo, start int
		buf           strings.Builder
	)
	flush := func() error {
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			return nil
		}
		return d.add(text, start)
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") { // comments (and parser directives) never continue an instruction
			continue
		}
		if buf.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = lineNo
		}
		if strings.HasSuffix(trimmed, `\`) {
			buf.WriteString(strings.TrimSuffix(trimmed, `\`))
			buf.WriteString(" ")
			continue
		}
		buf.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	if buf.Len() > 0 {
		return nil, fmt.Errorf("line %d: the last instruction ends with a line continuation", start)
	}
	if len(d.Stages) == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	return d, nil
}

func (d *Dockerfile) add(text string, line int) error {
	cmd, rest, _ := strings.Cut(text, " ")
	cmd = strings.ToUpper(cmd)
	if !knownCmds[cmd] {
		return fmt.Errorf("line %d: unknown instruction %q", line, cmd)
	}
	rest = strings.TrimSpace(rest)
	var flags []string
	for strings.HasPrefix(rest, "--") {
		var flag string
		flag, rest, _ = strings.Cut(rest, " ")
		flags = append(flags, flag)
		rest = strings.TrimSpace(rest)
	}
	in := Instruction{Cmd: cmd, Flags: flags, Args: rest, Line: line}

	if cmd == "FROM" {
		m := fromArgs.FindStringSubmatch(rest)
		if m == nil {
			return fmt.Errorf("line %d: FROM %q: want FROM [--platform=...] image [AS name]", line, rest)
		}
		st := &Stage{Name: strings.ToLower(m[2]), Base: m[1], Line: line}
		for _, f := range flags {
			if v, ok := strings.CutPrefix(f, "--platform="); ok {
				st.Platform = v
			} else {
				return fmt.Errorf("line %d: FROM flag %q not supported", line, f)
			}
		}
		if st.Name != "" && d.Stage(st.Name) != nil {
			return fmt.Errorf("line %d: stage name %q used twice", line, st.Name)
		}
		d.Stages = append(d.Stages, st)
		return nil
	}
	if len(d.Stages) == 0 {
		if cmd != "ARG" {
			return fmt.Errorf("line %d: only ARG may come before the first FROM, got %s", line, cmd)
		}
		name, def, _ := strings.Cut(rest, "=")
		d.GlobalArgs[name] = def
		return nil
	}
	st := d.Stages[len(d.Stages)-1]
	st.Instructions = append(st.Instructions, in)
	return nil
}

// Stage returns the stage called name, or nil.
func (d *Dockerfile) Stage(name string) *Stage {
	for _, s := range d.Stages {
		if s.Name == strings.ToLower(name) {
			return s
		}
	}
	return nil
}

// ResolvedBase expands global ARGs (their defaults) in the stage's FROM image.
func (d *Dockerfile) ResolvedBase(s *Stage) string {
	return argVariable.ReplaceAllStringFunc(s.Base, func(v string) string {
		name := argVariable.FindStringSubmatch(v)[1]
		if def, ok := d.GlobalArgs[name]; ok {
			return def
		}
		return v
	})
}

// All returns the stage's instructions with the given keyword.
func (s *Stage) All(cmd string) []Instruction {
	var out []Instruction
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// User is the user the stage's image runs as: the last USER, "" when none (root).
func (s *Stage) User() string {
	users := s.All("USER")
	if len(users) == 0 {
		return ""
	}
	return users[len(users)-1].Args
}

// ExecForm parses an instruction written in exec (JSON array) form, like ENTRYPOINT ["/kubemesos"].
func (in Instruction) ExecForm() ([]string, error) {
	var argv []string
	if err := json.Unmarshal([]byte(in.Args), &argv); err != nil {
		return nil, fmt.Errorf("line %d: %s %s is not in exec form: %w", in.Line, in.Cmd, in.Args, err)
	}
	return argv, nil
}

// Flag returns the value of --name=value on the instruction, or "".
func (in Instruction) Flag(name string) string {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}
