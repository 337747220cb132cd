package schedbench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on Linux everywhere).
const clockTicks = 100

// Usage is a process' (or a group's summed) CPU time and memory.
type Usage struct {
	// CPUSeconds is user plus system CPU time.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSBytes is the resident set now; PeakRSSBytes the highest it has been (VmHWM).
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// Processes is how many were summed.
	Processes int `json:"processes"`
}

// Add sums u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{CPUSeconds: u.CPUSeconds + v.CPUSeconds, RSSBytes: u.RSSBytes + v.RSSBytes,
		PeakRSSBytes: u.PeakRSSBytes + v.PeakRSSBytes, Processes: u.Processes + v.Processes}
}

// ProcStat is what /proc/<pid>/stat says that the benchmark needs.
type ProcStat struct {
	Comm       string
	PPID       int
	CPUSeconds float64
}

// parseStat parses a /proc/<pid>/stat line. comm is in parentheses and may hold spaces and ')', so
// the fields are counted from the last ')'.
func parseStat(line string) (ProcStat, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return ProcStat{}, fmt.Errorf("stat %q: no comm", line)
	}
	f := strings.Fields(line[end+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("stat %q: %d fields", line, len(f)+2)
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseUint(f[11], 10, 64)
	stime, err3 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return ProcStat{}, fmt.Errorf("stat %q: bad numbers", line)
	}
	return ProcStat{Comm: line[open+1 : end], PPID: ppid, CPUSeconds: float64(utime+stime) / clockTicks}, nil
}

// parseStatusMemory reads VmRSS and VmHWM (kB) from /proc/<pid>/status.
func parseStatusMemory(text string) (rss, hwm int64) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return rss, hwm
}

// procRoot is /proc (tests point it at a fake tree).
var procRoot = "/proc"

// ReadStat reads /proc/<pid>/stat.
func ReadStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, err
	}
	return parseStat(strings.TrimSpace(string(b)))
}

// ReadUsage reads one process' CPU time and memory.
func ReadUsage(pid int) (Usage, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return Usage{}, err
	}
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return Usage{}, err
	}
	rss, hwm := parseStatusMemory(string(b))
	return Usage{CPUSeconds: st.CPUSeconds, RSSBytes: rss, PeakRSSBytes: hwm, Processes: 1}, nil
}

// Descendants are the processes under ancestor (at any depth) whose comm is comm, except those in
// skip: the agents' executor processes under the harness, for instance.
func Descendants(ancestor int, comm string, skip ...int) ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	comms := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		parent[pid], comms[pid] = st.PPID, st.Comm
	}
	skipped := map[int]bool{}
	for _, p := range skip {
		skipped[p] = true
	}
	var out []int
	for pid, c := range comms {
		if c != comm || skipped[pid] || pid == ancestor {
			continue
		}
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == ancestor {
				out = append(out, pid)
				break
			}
			if _, known := parent[p]; !known {
				break
			}
		}
	}
	return out, nil
}

// SumUsage reads and sums the usage of pids (ones that exited meanwhile are left out).
func SumUsage(pids []int) Usage {
	var u Usage
	for _, p := range pids {
		if v, err := ReadUsage(p); err == nil {
			u = u.Add(v)
		}
	}
	return u
}
