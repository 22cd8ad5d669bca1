//go:build keyhold_faults

package opstest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// Environment variables that configure a child process.
const (
	envChild   = "KEYHOLD_OPSTEST_CHILD" // "1" in a child
	envBackend = "KEYHOLD_OPSTEST_BACKEND"
	envDB      = "KEYHOLD_OPSTEST_DB"
	envOwner   = "KEYHOLD_OPSTEST_OWNER"
	envLease   = "KEYHOLD_OPSTEST_LEASE"
)

// Timings of the children's Runners: short, so that a test spends little
// time waiting.
const (
	DefaultLeaseTTL = time.Second
	childPoll       = 20 * time.Millisecond
	childBackoff    = 20 * time.Millisecond
)

// Setup registers the kinds under test in r, whose operations work on s.
// The test process and every child call it, so it must register the same
// kinds each time.
type Setup func(s keyhold.Store, r *ops.Runner)

// Main runs the tests (m.Run) and exits, or, in a child process that this
// package started, runs the child's Runner until the parent stops it. Call
// it from TestMain.
func Main(m *testing.M, setup Setup) {
	if os.Getenv(envChild) == "1" {
		os.Exit(child(setup))
	}
	os.Exit(m.Run())
}

// child is a child process's main: a Runner with setup's kinds on the store
// the environment names, until its standard input closes (the parent
// stopped it, or died) or it gets SIGTERM.
func child(setup Setup) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		// The parent holds the other end: EOF means stop.
		bufio.NewReader(os.Stdin).ReadString(0)
		cancel()
	}()
	s, err := openStore(ctx, Backend{Name: os.Getenv(envBackend), DB: os.Getenv(envDB)})
	if err != nil {
		log.Error("opstest child: open store", "err", err)
		return 2
	}
	defer s.Close()
	lease, err := time.ParseDuration(os.Getenv(envLease))
	if err != nil {
		log.Error("opstest child: bad lease", "err", err)
		return 2
	}
	r, err := ops.New(ops.Config{
		Store: s, Logger: log, Owner: os.Getenv(envOwner), LeaseTTL: lease,
		PollInterval: childPoll, MinBackoff: childBackoff, MaxBackoff: 10 * childBackoff,
	})
	if err != nil {
		log.Error("opstest child: new runner", "err", err)
		return 2
	}
	setup(s, r)
	if err := r.Run(ctx); err != nil {
		log.Error("opstest child: run", "err", err)
		return 2
	}
	return 0
}

// Backend is a database that the test and its children open.
type Backend struct {
	// Name is "sqlite" or "postgres".
	Name string
	// DB is the SQLite database's path or the PostgreSQL DSN.
	DB string
}

// SQLite returns a backend in a fresh SQLite file in a temporary directory.
func SQLite(t testing.TB) Backend {
	return Backend{Name: "sqlite", DB: filepath.Join(t.TempDir(), "keyhold.db")}
}

// Postgres returns a backend in a fresh PostgreSQL database, dropped when
// the test ends; it skips or fails the test without a server, as
// storetest.NewPostgresDatabase does.
func Postgres(t testing.TB) Backend {
	t.Helper()
	return Backend{Name: "postgres", DB: storetest.NewPostgresDatabase(t).DSN}
}

func openStore(ctx context.Context, b Backend) (keyhold.Store, error) {
	switch b.Name {
	case "sqlite":
		return sqlite.Open(b.DB)
	case "postgres":
		return postgres.Open(ctx, b.DB)
	}
	return nil, fmt.Errorf("opstest: unknown backend %q", b.Name)
}

// Open opens the backend's store (creating its schema), closed when the
// test ends.
func (b Backend) Open(t testing.TB) keyhold.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := openStore(ctx, b)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ChildOptions configure a child process.
type ChildOptions struct {
	// Owner names the child's Runner (its lease owner).
	Owner string
	// Fault arms these fault points (ops.FaultEnv); "" arms none.
	Fault string
	// FaultOnce is ops.FaultOnceEnv: a file whose creation limits the
	// fault to the first child to reach it.
	FaultOnce string
	// LeaseTTL is the Runner's (default DefaultLeaseTTL).
	LeaseTTL time.Duration
}

// Child is a child process running a Runner.
type Child struct {
	// Owner is the child Runner's lease owner name.
	Owner string
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	out   *syncBuffer
	done  chan struct{}
	err   error // from Wait, once done is closed
}

// StartChild starts a child process with a Runner on b. The child is
// stopped, if still running, when the test ends, and its output is logged
// if the test failed.
func StartChild(t testing.TB, b Backend, o ChildOptions) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	cmd := exec.Command(exe, "-test.run=^$")
	var env []string
	for _, kv := range os.Environ() {
		if !hasKey(kv, ops.FaultEnv, ops.FaultOnceEnv, envChild, envBackend, envDB, envOwner, envLease) {
			env = append(env, kv)
		}
	}
	env = append(env, envChild+"=1", envBackend+"="+b.Name, envDB+"="+b.DB, envOwner+"="+o.Owner,
		envLease+"="+o.LeaseTTL.String())
	if o.Fault != "" {
		env = append(env, ops.FaultEnv+"="+o.Fault)
	}
	if o.FaultOnce != "" {
		env = append(env, ops.FaultOnceEnv+"="+o.FaultOnce)
	}
	cmd.Env = env
	c := &Child{Owner: o.Owner, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", o.Owner, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("child %s (pid %d, %s) output:\n%s", o.Owner, cmd.Process.Pid, c.status(), c.out.String())
		}
	})
	return c
}

func hasKey(kv string, keys ...string) bool {
	for _, k := range keys {
		if len(kv) > len(k) && kv[:len(k)] == k && kv[len(k)] == '=' {
			return true
		}
	}
	return false
}

// Done is closed when the child has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Killed reports whether the child has exited by SIGKILL, as a fault point
// makes it.
func (c *Child) Killed() bool {
	select {
	case <-c.done:
	default:
		return false
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func (c *Child) status() string {
	select {
	case <-c.done:
		return c.cmd.ProcessState.String()
	default:
		return "running"
	}
}

// Stop asks the child to stop (it releases its leases) and waits for it,
// killing it after 10 seconds.
func (c *Child) Stop() {
	c.stdin.Close()
	select {
	case <-c.done:
		return
	case <-time.After(10 * time.Second):
	}
	c.cmd.Process.Kill()
	<-c.done
}

// Output returns what the child has logged so far.
func (c *Child) Output() string { return c.out.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Crash is one crash test: an operation submitted to a store, a child
// Runner killed at a fault point, and a replacement that must end the
// operation.
type Crash struct {
	// Backend is where the store lives.
	Backend Backend
	// Setup registers the kinds: the same function Main was given.
	Setup Setup
	// Fault is the fault point (see ops.FaultPoints) at which the child
	// holding the operation dies.
	Fault string
	// Replicas is 1 (the default) to run one child, let it die at Fault
	// and start another without the fault; or 2 to run two children at
	// once, both armed (ops.FaultOnceEnv), so that the one holding the
	// operation's lease dies and the other takes it over when the lease
	// ends.
	Replicas int
	// LeaseTTL is the children's (default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Timeout bounds each wait: for the kill, and for the end (default
	// 30s).
	Timeout time.Duration
}

// Result is what a Crash test saw.
type Result struct {
	// Store is the test's own connection to the backend.
	Store keyhold.Store
	// Op is the operation as stored once it ended.
	Op *keyhold.Operation
	// Killed is the owner name of the child that died at the fault
	// point, Finisher that of the child whose Runner ended the operation
	// (it kept the lease's owner).
	Killed, Finisher string
}

// Run seeds the store (seed may be nil), submits op, runs the scenario and
// returns the outcome, failing the test if no child died at the fault point
// by SIGKILL or the operation didn't end in time. The test then checks the
// operation's invariants in res.Store.
func (c Crash) Run(t *testing.T, seed func(t *testing.T, s keyhold.Store), op *keyhold.Operation) Result {
	t.Helper()
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	s := c.Backend.Open(t)
	if seed != nil {
		seed(t, s)
	}
	parent, err := ops.New(ops.Config{Store: s, Owner: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	c.Setup(s, parent)
	ctx := context.Background()
	if err := parent.Submit(ctx, op); err != nil {
		t.Fatalf("submit: %v", err)
	}
	res := Result{Store: s}
	switch c.Replicas {
	case 0, 1:
		a := StartChild(t, c.Backend, ChildOptions{Owner: "a", Fault: c.Fault, LeaseTTL: c.LeaseTTL})
		waitKilled(t, c, a)
		res.Killed = a.Owner
		StartChild(t, c.Backend, ChildOptions{Owner: "b", LeaseTTL: c.LeaseTTL})
	case 2:
		once := filepath.Join(t.TempDir(), "fault-fired")
		a := StartChild(t, c.Backend, ChildOptions{Owner: "a", Fault: c.Fault, FaultOnce: once, LeaseTTL: c.LeaseTTL})
		b := StartChild(t, c.Backend, ChildOptions{Owner: "b", Fault: c.Fault, FaultOnce: once, LeaseTTL: c.LeaseTTL})
		var dead, alive *Child
		select {
		case <-a.Done():
			dead, alive = a, b
		case <-b.Done():
			dead, alive = b, a
		case <-time.After(c.Timeout):
			t.Fatalf("no replica died at fault point %s within %v", c.Fault, c.Timeout)
		}
		if !dead.Killed() {
			t.Fatalf("replica %s exited (%s) without being killed at fault point %s", dead.Owner, dead.status(), c.Fault)
		}
		if _, err := os.Stat(once); err != nil {
			t.Fatalf("replica %s died by SIGKILL but the fault point didn't fire: %v", dead.Owner, err)
		}
		res.Killed = dead.Owner
		defer func() {
			select {
			case <-alive.Done():
				t.Errorf("the surviving replica %s exited too (%s)", alive.Owner, alive.status())
			default:
			}
		}()
	default:
		t.Fatalf("Crash.Replicas is %d: want 1 or 2", c.Replicas)
	}
	res.Op = WaitEnded(t, s, op.ID, c.Timeout)
	res.Finisher = res.Op.LeaseOwner
	return res
}

func waitKilled(t *testing.T, c Crash, ch *Child) {
	t.Helper()
	select {
	case <-ch.Done():
	case <-time.After(c.Timeout):
		t.Fatalf("child %s did not die at fault point %s within %v", ch.Owner, c.Fault, c.Timeout)
	}
	if !ch.Killed() {
		t.Fatalf("child %s exited (%s), want killed by SIGKILL at fault point %s (does TestMain call opstest.Main?)",
			ch.Owner, ch.status(), c.Fault)
	}
}

// WaitEnded polls s until operation id is no longer Running and returns it,
// failing the test after timeout.
func WaitEnded(t testing.TB, s keyhold.Store, id string, timeout time.Duration) *keyhold.Operation {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var op *keyhold.Operation
		err := s.View(context.Background(), func(tx keyhold.Tx) (err error) {
			op, err = tx.Operation(context.Background(), id)
			return err
		})
		if err != nil {
			t.Fatalf("read operation %s: %v", id, err)
		}
		if op.State != keyhold.OperationRunning {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still Running after %v: step %q, attempts %d, error %q, lease %q until %v",
				id, timeout, op.Step, op.Attempts, op.ErrorMsg, op.LeaseOwner, op.LeaseUntil)
		}
		time.Sleep(childPoll)
	}
}

// String describes a Result for test logs.
func (r Result) String() string {
	return "killed " + r.Killed + ", finished by " + r.Finisher + ", op " + string(r.Op.State) + " v" + strconv.FormatInt(r.Op.Version, 10)
}
