package charts

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const versionPkg = "github.com/kubemesos/kubemesos/internal/version"

// The repository's Dockerfile: docker cannot build here, so its structure is what is checked.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	d, err := ParseDockerfileFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range d.Stages {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"build", "mesos-sim", "kubemesos"}, names); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if last := d.Stages[len(d.Stages)-1]; last.Name != "kubemesos" {
		t.Errorf("the default target (last stage) is %q, want kubemesos", last.Name)
	}

	build := d.Stage("build")
	if build == nil {
		t.Fatal("no build stage")
	}
	if build.Platform != "$BUILDPLATFORM" {
		t.Errorf("build stage platform %q, want $BUILDPLATFORM (cross-compile, do not emulate)", build.Platform)
	}
	if base := d.ResolvedBase(build); !regexp.MustCompile(`^golang:1\.26(\.\d+)?-`).MatchString(base) {
		t.Errorf("build stage base %q, want a golang:1.26 image (go.mod says go 1.26)", base)
	}
	var env, run strings.Builder
	for _, in := range build.All("ENV") {
		env.WriteString(in.Args + " ")
	}
	for _, in := range build.All("RUN") {
		run.WriteString(in.Args + " ")
	}
	if !strings.Contains(env.String(), "CGO_ENABLED=0") && !strings.Contains(run.String(), "CGO_ENABLED=0") {
		t.Error("build stage does not set CGO_ENABLED=0: the binaries would not be static")
	}
	builds := regexp.MustCompile(`go build ([^&]*?)-o (\S+) (\./cmd/\S+)`).FindAllStringSubmatch(run.String(), -1)
	built := map[string]string{}
	for _, b := range builds {
		flags, out, pkg := b[1], b[2], b[3]
		built[out] = pkg
		for _, want := range []string{"-trimpath", "-buildvcs=false", "-buildid=", "-X " + versionPkg + ".Version=${VERSION}", "-X " + versionPkg + ".Commit=${COMMIT}"} {
			if !strings.Contains(flags, want) {
				t.Errorf("go build of %s lacks %q", pkg, want)
			}
		}
		t.Run("main package "+pkg, func(t *testing.T) { mainPackage(t, filepath.Join(root, pkg)) })
	}
	if diff := cmp.Diff(map[string]string{"/out/kubemesos": "./cmd/kubemesos", "/out/mesos-sim": "./cmd/mesos-sim"}, built); diff != "" {
		t.Errorf("binaries built (-want +got):\n%s", diff)
	}
	for _, arg := range []string{"VERSION", "COMMIT"} {
		if !slices.ContainsFunc(build.All("ARG"), func(in Instruction) bool { return strings.HasPrefix(in.Args, arg) }) {
			t.Errorf("build stage lacks ARG %s", arg)
		}
	}
	stampable(t, filepath.Join(root, "internal", "version", "version.go"), "Version", "Commit")

	for _, tc := range []struct {
		stage, binary, base string
	}{
		{"kubemesos", "/kubemesos", "gcr.io/distroless/static-debian12:nonroot"},
		{"mesos-sim", "/mesos-sim", "gcr.io/distroless/static-debian12:debug-nonroot"},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			s := d.Stage(tc.stage)
			if s == nil {
				t.Fatalf("no stage %s", tc.stage)
			}
			if got := d.ResolvedBase(s); got != tc.base {
				t.Errorf("base %q, want %q", got, tc.base)
			}
			if u := s.User(); u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
				t.Errorf("USER %q: the image must not run as root", u)
			}
			copies := s.All("COPY")
			if len(copies) != 1 || copies[0].Flag("from") != "build" || copies[0].Args != "/out/"+strings.TrimPrefix(tc.binary, "/")+" "+tc.binary {
				t.Errorf("COPY %+v, want exactly the built binary from the build stage", copies)
			}
			eps := s.All("ENTRYPOINT")
			if len(eps) != 1 {
				t.Fatalf("%d ENTRYPOINTs", len(eps))
			}
			argv, err := eps[0].ExecForm()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tc.binary}, argv); diff != "" {
				t.Errorf("ENTRYPOINT (-want +got):\n%s", diff)
			}
		})
	}
	if cmds := d.Stage("kubemesos").All("CMD"); len(cmds) != 1 || cmds[0].Args != `["framework"]` {
		t.Errorf("kubemesos CMD %+v, want [\"framework\"] (the chart and the Marathon app pass args after it)", cmds)
	}
}

// mainPackage checks that dir holds a main package for `go build`. A directory not yet created (another
// package's work in progress) skips, loudly, rather than failing everyone's build.
func mainPackage(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	if len(files) == 0 {
		t.Skipf("SKIP: %s has no Go files yet; the Dockerfile builds it", dir)
	}
	for _, f := range files {
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if file.Name.Name != "main" {
			t.Errorf("%s is package %s, want main", f, file.Name.Name)
		}
	}
}

// stampable checks that -X can set the named variables: package-level string vars (not consts), or the
// linker silently ignores the flag.
func stampable(t *testing.T, file string, names ...string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				isString := false
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
					isString = true
				} else if vs.Type == nil && i < len(vs.Values) {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					isString = ok && lit.Kind == token.STRING
				}
				if isString {
					found[n.Name] = true
				}
			}
		}
	}
	for _, n := range names {
		if !found[n] {
			t.Errorf("%s: no package-level string var %s for -X to stamp", file, n)
		}
	}
}

// .dockerignore keeps the context small but must not drop what `go build` needs.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	lines := map[string]bool{}
	for _, l := range strings.Split(readFile(t, filepath.Join(repoRoot(t), ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "framework", "executor", "mesossim", "podtranslate", "offerbridge", "*.go", "**/*.go"} {
		if lines[needed] || lines["/"+needed] {
			t.Errorf(".dockerignore excludes %s, which the build needs", needed)
		}
	}
	for _, dropped := range []string{".git", "e2e", "charts"} {
		if !lines[dropped] {
			t.Errorf(".dockerignore should exclude %s (not needed to build, large or secret)", dropped)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		wantErr    string
		check      func(t *testing.T, d *Dockerfile)
	}{
		{
			name: "stages, continuations, comments, global args",
			text: "# syntax=docker/dockerfile:1\nARG BASE=alpine:3\nARG NOVALUE\nFROM ${BASE} AS One\nRUN a && \\\n  # a comment inside\n  b\nUSER 1000\nfrom scratch\nCOPY --from=one --chmod=0755 /x /x\n",
			check: func(t *testing.T, d *Dockerfile) {
				if diff := cmp.Diff(map[string]string{"BASE": "alpine:3", "NOVALUE": ""}, d.GlobalArgs); diff != "" {
					t.Errorf("global args (-want +got):\n%s", diff)
				}
				if len(d.Stages) != 2 || d.Stages[0].Name != "one" || d.Stages[1].Name != "" {
					t.Fatalf("stages %+v", d.Stages)
				}
				if got := d.ResolvedBase(d.Stages[0]); got != "alpine:3" {
					t.Errorf("resolved base %q", got)
				}
				if run := d.Stages[0].All("RUN"); len(run) != 1 || run[0].Args != "a &&  b" || run[0].Line != 5 {
					t.Errorf("RUN %+v", run)
				}
				if d.Stages[0].User() != "1000" || d.Stages[1].User() != "" {
					t.Errorf("users %q %q", d.Stages[0].User(), d.Stages[1].User())
				}
				cp := d.Stages[1].All("COPY")[0]
				if cp.Flag("from") != "one" || cp.Flag("chmod") != "0755" || cp.Args != "/x /x" {
					t.Errorf("COPY %+v", cp)
				}
			},
		},
		{name: "instruction before FROM", text: "RUN x\nFROM a\n", wantErr: "only ARG may come before the first FROM"},
		{name: "unknown instruction", text: "FROM a\nRUNN x\n", wantErr: `unknown instruction "RUNN"`},
		{name: "duplicate stage", text: "FROM a AS x\nFROM b AS X\n", wantErr: `stage name "x" used twice`},
		{name: "dangling continuation", text: "FROM a\nRUN x \\\n", wantErr: "ends with a line continuation"},
		{name: "no FROM", text: "ARG X=1\n", wantErr: "no FROM"},
		{name: "bad FROM", text: "FROM a b c\n", wantErr: "want FROM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDockerfile(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
	t.Run("exec form", func(t *testing.T) {
		if _, err := (Instruction{Cmd: "ENTRYPOINT", Args: "/kubemesos framework"}).ExecForm(); err == nil {
			t.Error("shell form accepted as exec form")
		}
	})
}

// dockerfileBuildCommand returns the Dockerfile's `go build` for the binary it writes to image (e.g.
// /out/kubemesos) as go arguments writing to out, with the build stage's ENV and ${VERSION}/${COMMIT}
// replaced by testVersion/testCommit.
func dockerfileBuildCommand(root, image, out string) (args, env []string, err error) {
	d, err := ParseDockerfileFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, nil, err
	}
	build := d.Stage("build")
	if build == nil {
		return nil, nil, errors.New("Dockerfile has no build stage")
	}
	for _, in := range build.All("ENV") {
		env = append(env, strings.Fields(in.Args)...)
	}
	vars := strings.NewReplacer("${VERSION}", testVersion, "${COMMIT}", testCommit)
	for _, in := range build.All("RUN") {
		for _, part := range strings.Split(in.Args, "&&") {
			words, err := shellWords(part)
			if err != nil {
				return nil, nil, fmt.Errorf("line %d: %w", in.Line, err)
			}
			i := slices.Index(words, "go")
			if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
				continue
			}
			words = words[i+1:]
			o := slices.Index(words, "-o")
			if o < 0 || o+1 >= len(words) || words[o+1] != image {
				continue
			}
			words[o+1] = out
			for j := range words {
				words[j] = vars.Replace(words[j])
			}
			return words, env, nil
		}
	}
	return nil, nil, fmt.Errorf("the build stage has no `go build -o %s`", image)
}

// shellWords splits a command line on blanks, honouring double quotes (enough for the Dockerfile's RUN).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated double quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// The Dockerfile's build command, run here, stamps the version and commit that `kubemesos version` prints.
func TestDockerfileBuildStampsKubemesosVersion(t *testing.T) {
	out, err := exec.Command(kubemesosBinary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("kubemesos version: %v\n%s", err, out)
	}
	want := "kubemesos " + testVersion + " (commit " + testCommit + ","
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("kubemesos version printed %q, want it to start with %q", out, want)
	}
}

func TestShellWords(t *testing.T) {
	got, err := shellWords(` GOOS=$X go build -ldflags "-s -w -X a.B=${V}" -o /out/k ./cmd/k `)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GOOS=$X", "go", "build", "-ldflags", "-s -w -X a.B=${V}", "-o", "/out/k", "./cmd/k"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := shellWords(`go "build`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
