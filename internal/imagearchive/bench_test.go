package imagearchive

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BenchmarkReadConfigFor reads the config of a busybox-sized archive (one 4 MiB layer) the Mesos
// way, as a simulated agent does on an image's first launch (later launches use its cache).
func BenchmarkReadConfigFor(b *testing.B) {
	dir := b.TempDir()
	layer, err := random.Layer(4<<20, types.DockerLayer)
	if err != nil {
		b.Fatal(err)
	}
	if err := Write(dir, "busybox", BusyboxConfig, layer); err != nil {
		b.Fatal(err)
	}
	path := Path(dir, "busybox")
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadConfigFor(path, "busybox"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteStandIns is the cost local-up and every e2e env pay to build their registry.
func BenchmarkWriteStandIns(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if err := WriteStandIns(dir); err != nil {
			b.Fatal(err)
		}
	}
}
