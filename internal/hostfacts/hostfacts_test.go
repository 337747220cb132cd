package hostfacts

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollectReadsTheHostsFiles(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/os-release":                 "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\n",
		"etc/machine-id":                 "0123456789abcdef0123456789abcdef\n",
		"proc/sys/kernel/osrelease":      "6.1.0-test\n",
		"proc/sys/kernel/random/boot_id": "b0e1d2c3-0000-4000-8000-000000000001\n",
	})
	want := Facts{Kind: Kind, KernelVersion: "6.1.0-test", OSImage: "Debian GNU/Linux 13 (trixie)",
		OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
		MachineID: "0123456789abcdef0123456789abcdef", BootID: "b0e1d2c3-0000-4000-8000-000000000001"}
	if diff := cmp.Diff(want, Collect(root)); diff != "" {
		t.Errorf("Collect (-want +got):\n%s", diff)
	}
}

// Without /etc/os-release the image is the one in /usr/lib (os-release(5)'s fallback), and without
// either it is "Unknown", as cadvisor says.
func TestCollectOSReleaseFallbacks(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"usr/lib/os-release": "PRETTY_NAME='Fallback OS'\n"})
	if got := Collect(root).OSImage; got != "Fallback OS" {
		t.Errorf("OSImage from usr/lib/os-release = %q", got)
	}
	if got := Collect(t.TempDir()).OSImage; got != "Unknown" {
		t.Errorf("OSImage without os-release = %q, want Unknown", got)
	}
}

func TestCollectThisHost(t *testing.T) {
	f := Collect("/")
	if f.KernelVersion == "" || f.OperatingSystem != runtime.GOOS || f.Architecture != runtime.GOARCH {
		t.Errorf("Collect(/) = %+v: want this host's kernel release, OS and architecture", f)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	f := Facts{Kind: Kind, KernelVersion: "6.1", OSImage: "X", OperatingSystem: "linux", Architecture: "arm64", BootID: "b"}
	got, err := Decode(f.Encode())
	if err != nil || got != f {
		t.Errorf("Decode(Encode(%+v)) = %+v, %v", f, got, err)
	}
}

func TestDecodeRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		data    string
		notOurs bool
		text    string
	}{
		"garbled":       {data: "\x00\x01not json", notOurs: true},
		"another kind":  {data: `{"kind":"someone-else","kernelVersion":"6"}`, notOurs: true},
		"no kind":       {data: `{"kernelVersion":"6","operatingSystem":"linux","architecture":"amd64"}`, notOurs: true},
		"too big":       {data: `{"kind":"` + Kind + `","osImage":"` + strings.Repeat("x", maxMessage) + `"}`, notOurs: true},
		"missing facts": {data: `{"kind":"` + Kind + `","osImage":"X"}`, text: "host facts without architecture, kernelVersion, operatingSystem"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data))
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrNotFacts) != tc.notOurs {
				t.Errorf("error %v: ErrNotFacts %v, want %v", err, errors.Is(err, ErrNotFacts), tc.notOurs)
			}
			if tc.text != "" && err.Error() != tc.text {
				t.Errorf("error %q, want %q", err, tc.text)
			}
		})
	}
}
