package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// TestFlowRunSurvivesSIGKILL: a real "keyhold serve" process runs a flow
// whose run waits (a Wait, the designer's Delay) before its Http action;
// the process is killed with SIGKILL mid-wait, and a second process on
// the same data directory resumes the run once the first's lease lapses:
// the run completes, once (the Http action reaches the test server
// exactly one time), and no run is lost or added.
func TestFlowRunSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the keyhold binary")
	}
	began := time.Now()
	bin := filepath.Join(t.TempDir(), "keyhold")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/keyhold/keyhold/cmd/keyhold").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	built := time.Now()

	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hit" {
			hits.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(target.Close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	data := t.TempDir()
	logs := filepath.Join(t.TempDir(), "serve.log")
	logf, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	serve := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--egress-allow", "127.0.0.1", "--flow-lease-ttl", "3s", "--log-format", "json")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		})
		return cmd
	}
	dump := func() string { b, _ := os.ReadFile(logs); return string(b) }

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := serve()
	c := waitClient(t, ctx, data, dump)
	env := &keyhold.Environment{DisplayName: "kill", Location: "europe", SKU: keyhold.SKUProduction}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	name := "Wait then call"
	def := `{"triggers":{"manual":{"type":"Request","kind":"Button"}},
 "actions":{
  "Delay":{"type":"Wait","inputs":{"interval":{"count":4,"unit":"Second"}}},
  "Call":{"type":"Http","inputs":{"method":"GET","uri":"` + target.URL + `/hit","retryPolicy":{"type":"none"}},"runAfter":{"Delay":["Succeeded"]}}}}`
	if _, err := c.PutFlow(ctx, env.ID, "waiter", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(def)}); err != nil {
		t.Fatal(err)
	}
	run, err := c.RunTrigger(ctx, env.ID, "waiter", "manual", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// Kill once the Wait has started (its start is saved).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		acts, err := c.RunActions(ctx, env.ID, "waiter", run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(acts) > 0 && acts[0].Path == "Delay" && acts[0].Status == "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Wait never started: %+v\n%s", acts, dump())
		}
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	if n := hits.Load(); n != 0 {
		t.Fatalf("the Http action ran before the kill (%d): the kill proves nothing", n)
	}

	serve()
	c = waitClient(t, ctx, data, dump)
	var end *keyhold.FlowRun
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		end, err = c.GetRun(ctx, env.ID, "waiter", run.ID)
		if err == nil && end.Status != keyhold.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not finish on the second process: %+v, %v\n%s", end, err, dump())
		}
	}
	if end.Status != keyhold.RunSucceeded {
		acts, _ := c.RunActions(ctx, env.ID, "waiter", run.ID)
		out, _ := json.Marshal(acts)
		t.Fatalf("run %s: %s", end.Status, out)
	}
	time.Sleep(500 * time.Millisecond) // a second execution would have called by now
	if n := hits.Load(); n != 1 {
		t.Fatalf("the Http action reached the server %d times, want exactly once", n)
	}
	runs, err := c.ListRuns(ctx, env.ID, "waiter")
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("runs after the restart: %+v, %v (want the one run)", runs, err)
	}
	acts, err := c.RunActions(ctx, env.ID, "waiter", run.ID)
	if err != nil || len(acts) != 2 || acts[1].Path != "Call" || acts[1].Attempts != 1 {
		t.Fatalf("actions: %+v, %v", acts, err)
	}
	t.Logf("build %v, kill and resume %v", built.Sub(began).Round(time.Millisecond), time.Since(built).Round(time.Millisecond))
}

// waitClient waits until the server of dataDir answers and returns a
// client signed in with its bootstrap credentials.
func waitClient(t *testing.T, ctx context.Context, dataDir string, dump func() string) *khttp.Client {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dataDir, "bootstrap.json")); err == nil {
			bs := readBootstrap(t, dataDir)
			c := client(t, bs.URL, bs)
			if _, err := c.ListEnvironments(ctx); err == nil {
				return c
			} else if time.Now().After(deadline) {
				t.Fatalf("the server does not answer: %v\n%s", err, dump())
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("no bootstrap file\n%s", dump())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
