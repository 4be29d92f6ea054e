package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// cluster is a PostgreSQL server that pgtest started for one test binary.
// Its data, Unix socket and log live in one temporary folder, removed on
// stop.
//
// The server runs as a child of the test binary (postgres itself, not a
// daemon started by pg_ctl) with a parent-death signal, so a test binary
// that panics or is killed on a timeout does not leave a server running.
type cluster struct {
	dir    string
	bin    string              // the folder of initdb and postgres
	cred   *syscall.Credential // whom they run as; nil: the caller
	port   int                 // kept across a halt and a run
	url    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the server process has exited; nil while halted
}

// startCluster creates a cluster in a new temporary folder and starts its
// server on a free port of 127.0.0.1, with user postgres trusted.
func startCluster() (*cluster, error) {
	bin, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "conveyor-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, bin: bin, cred: cred}
	if err := c.init(); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	if err := c.run(); err != nil {
		return nil, errors.Join(err, c.stop())
	}
	return c, nil
}

// init runs initdb and picks the server's port and URL.
func (c *cluster) init() error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	// Durability is worth nothing in a cluster thrown away after the tests;
	// skipping fsync makes initdb and CREATE DATABASE several times faster.
	initdb := exec.CommandContext(context.Background(), filepath.Join(c.bin, "initdb"), "-D", filepath.Join(c.dir, "data"),
		"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = c.dir // the postgres user may not be able to enter the caller's folder
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", initdb, err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	// TCP rather than the socket: child processes of the tests (conveyor
	// serve) connect with this URL too, whatever folder they run in.
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return nil
}

// run starts the server on the cluster's data and port, and waits until
// it accepts a connection.
func (c *cluster) run() error {
	// Appended to: the log of a server run again keeps the earlier runs'.
	log, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the server has its own copy
	// Not CommandContext's cancel: halt ends the server, with a signal it
	// handles.
	c.cmd = exec.CommandContext(context.Background(), filepath.Join(c.bin, "postgres"), "-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	c.cmd.Dir = c.dir
	c.cmd.Stdout, c.cmd.Stderr = log, log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	if err := c.cmd.Start(); err != nil {
		return err
	}
	exited, cmd := make(chan struct{}), c.cmd
	c.exited = exited
	go func() {
		_ = cmd.Wait() // a server stopped by a signal exits non-zero
		close(exited)
	}()

	deadline := time.Now().Add(time.Minute)
	for {
		err := ping(c.url)
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited: %s", c.cmd, c.log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after a minute: %w\n%s", c.cmd, err, c.log())
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness, with the deadline above
	}
}

// halt stops the server, if it runs, and keeps its data for run.
func (c *cluster) halt() error {
	if c.exited == nil {
		return nil
	}
	// A fast shutdown: it ends the sessions still open (conveyor serve
	// processes a test left running) instead of waiting for them.
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.exited = nil
	return nil
}

// stop stops the server, if it runs, and removes the folder.
func (c *cluster) stop() error {
	if err := c.halt(); err != nil {
		return err
	}
	return os.RemoveAll(c.dir)
}

// log returns what the server wrote, for an error message.
func (c *cluster) log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// serverBinaries returns the folder with initdb and postgres: Debian's
// newest /usr/lib/postgresql/N/bin, or else the one holding initdb on PATH.
func serverBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or on PATH")
}

// version is N of /usr/lib/postgresql/N/bin, 0 if N is not a number.
func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential returns whom to run initdb and the server as: nil,
// the caller, unless the caller is root, which initdb and postgres
// refuse; then the postgres user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which initdb refuses, and no postgres user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
