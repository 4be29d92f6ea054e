package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// openFiles is what raiseOpenFiles did.
type openFiles struct {
	raised string // a note when the hard limit was raised
}

// raiseOpenFiles makes sure this process may open need files. Go already
// raises the soft RLIMIT_NOFILE to the hard limit at start (Linux, since
// Go 1.19); when the hard limit is below need too, it tries to raise that,
// which only a privileged process (root, CAP_SYS_RESOURCE) may do, and
// otherwise says which limit stops the scenario.
func raiseOpenFiles(need uint64, scenario string) (openFiles, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return openFiles{}, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return openFiles{}, nil
	}
	if lim.Max >= need {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return openFiles{}, fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
		}
		return openFiles{}, nil
	}
	old := lim
	lim.Cur, lim.Max = need, need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return openFiles{}, fmt.Errorf("%s needs about %d open files in this process (every connection is a socket here, and two when the server is embedded), "+
			"but RLIMIT_NOFILE is %d (hard limit %d) and raising the hard limit was refused (%v): "+
			"raise it where it is set (`ulimit -Hn %d` by a user allowed to, LimitNOFILE= in systemd, --ulimit nofile= in Docker), ask for fewer, "+
			"or run the server as its own process (`conveyor serve --bench-pipelines`) and use --server",
			scenario, need, old.Cur, old.Max, err, need)
	}
	return openFiles{raised: fmt.Sprintf("raised RLIMIT_NOFILE from %d (hard %d) to %d for this process", old.Cur, old.Max, need)}, nil
}

// rssKiB returns the resident set size of process pid from /proc. For this
// process it first collects garbage and returns freed memory to the OS, so
// that the figure is what is live.
func rssKiB(pid int) (int64, error) {
	if pid == os.Getpid() {
		runtime.GC()
		debug.FreeOSMemory()
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("read RSS: no VmRSS line in /proc/PID/status")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// cpuTime returns the user+system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	if pid == os.Getpid() {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, fmt.Errorf("getrusage: %w", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis, where field 3 (state) starts.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("read CPU time: malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("read CPU time: short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
