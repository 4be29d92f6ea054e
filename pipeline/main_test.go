package pipeline_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conveyor-run/conveyor"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Keep-alive connections of the http step tests are not leaks.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// recorder is the engine's side of a conveyor.Exec: it keeps what a step
// reports.
type recorder struct {
	mu      sync.Mutex
	updates []conveyor.Update
	logs    []string
	data    json.RawMessage // the data merged from every SetData
	// checkpoints are those recorded; refuse makes recording fail.
	checkpoints []string
	refuse      error
}

func (r *recorder) exec() *conveyor.Exec {
	return &conveyor.Exec{
		ID:       "ex-1",
		Pipeline: "demo",
		Attempt:  2,
		Step:     "resize",
		Input:    json.RawMessage(`{"bucket":"photos","n":3}`),
		ProgressFunc: func(u conveyor.Update) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.updates = append(r.updates, u)
		},
		LogFunc: func(_, line string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logs = append(r.logs, line)
		},
		CheckpointFunc: func(checkpoint json.RawMessage) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.refuse != nil {
				return r.refuse
			}
			r.checkpoints = append(r.checkpoints, string(checkpoint))
			return nil
		},
		DataFunc: func(patch json.RawMessage) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			data, err := conveyor.MergeData(r.data, patch)
			if err == nil {
				r.data = data
			}
			return err
		},
	}
}

func (r *recorder) progress() []conveyor.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]conveyor.Update(nil), r.updates...)
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.checkpoints...)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loggedPID waits for a "pid N" line and returns N.
func (r *recorder) loggedPID(t *testing.T) int {
	t.Helper()
	var pid int
	waitFor(t, 10*time.Second, "the step to log its pid", func() bool {
		for _, l := range r.lines() {
			if s, ok := strings.CutPrefix(l, "pid "); ok {
				pid, _ = strconv.Atoi(s)
				return pid > 0
			}
		}
		return false
	})
	return pid
}

// groupMembers counts the running processes of group pgid. kill(-pgid, 0)
// cannot tell: orphans that were killed stay zombies until init reaps
// them, and the init of a container may never do so.
func groupMembers(t *testing.T, pgid int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold anything, so split after its ')'.
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			n++
		}
	}
	return n
}
