package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/server"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/spf13/cobra"
)

// The http Client is what the backup commands get.
var _ keyhold.BackupClient = (*khttp.Client)(nil)

func dbOpCmd(kind string) func(*Factory, func(*EnvDBOperationOptions) error) *cobra.Command {
	return func(f *Factory, runF func(*EnvDBOperationOptions) error) *cobra.Command {
		return newCmdEnvDBOperation(f, runF, kind)
	}
}

func TestNewCmdBackup(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdBackupCreate, "e1", "--label", "before the upgrade", "-o", "id")
		if checkParse(t, err, "") {
			sameOptions(t, got, &BackupCreateOptions{EnvID: "e1", Label: "before the upgrade", Format: FormatID})
		}
		got, err = parseOpts(t, nil, newCmdBackupCreate, "e1")
		if checkParse(t, err, "") {
			sameOptions(t, got, &BackupCreateOptions{EnvID: "e1", Format: FormatTable})
		}
		_, err = parseOpts(t, nil, newCmdBackupCreate)
		checkParse(t, err, "is missing <env>")
		_, err = parseOpts(t, nil, newCmdBackupCreate, "e1", "--label", strings.Repeat("x", keyhold.MaxBackupLabel+1))
		checkParse(t, err, "--label is 257 bytes long: use at most 256")
	})
	t.Run("list", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdBackupList, "e1", "-o", "json")
		if checkParse(t, err, "") {
			sameOptions(t, got, &BackupListOptions{EnvID: "e1", Format: FormatJSON})
		}
		_, err = parseOpts(t, nil, newCmdBackupList, "e1", "e2")
		checkParse(t, err, `got unexpected "e2"`)
	})
	t.Run("delete", func(t *testing.T) {
		got, err := parseOpts(t, nil, newCmdBackupDelete, "e1", "b1")
		if checkParse(t, err, "") {
			sameOptions(t, got, &BackupDeleteOptions{EnvID: "e1", BackupID: "b1"})
		}
		_, err = parseOpts(t, nil, newCmdBackupDelete, "e1")
		checkParse(t, err, "is missing <backup>")
	})
}

func TestNewCmdEnvRestoreCopyReset(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		args    []string
		want    EnvDBOperationOptions
		wantErr string
	}{
		{name: "restore", kind: keyhold.OpRestore, args: []string{"e1", "--backup", "b1"},
			want: EnvDBOperationOptions{Kind: "restore", TargetID: "e1", BackupID: "b1", Format: FormatTable}},
		{name: "restore, no wait, id output", kind: keyhold.OpRestore, args: []string{"e1", "--backup", "b1", "--no-wait", "-o", "id"},
			want: EnvDBOperationOptions{Kind: "restore", TargetID: "e1", BackupID: "b1", NoWait: true, Format: FormatID}},
		{name: "restore needs a backup", kind: keyhold.OpRestore, args: []string{"e1"}, wantErr: `"keyhold restore" needs --backup`},
		{name: "restore of two environments", kind: keyhold.OpRestore, args: []string{"e1", "e2", "--backup", "b1"}, wantErr: `got unexpected "e2"`},
		{name: "copy", kind: keyhold.OpCopy, args: []string{"src", "dst", "--timeout", "10m"},
			want: EnvDBOperationOptions{Kind: "copy", SourceID: "src", TargetID: "dst", Timeout: 10 * time.Minute, Format: FormatTable}},
		{name: "copy needs a target", kind: keyhold.OpCopy, args: []string{"src"}, wantErr: "is missing <target-env>"},
		{name: "copy onto itself", kind: keyhold.OpCopy, args: []string{"e1", "e1"}, wantErr: "can't be copied onto itself"},
		{name: "copy takes no backup", kind: keyhold.OpCopy, args: []string{"src", "dst", "--backup", "b1"}, wantErr: "unknown flag: --backup"},
		{name: "reset", kind: keyhold.OpReset, args: []string{"e1", "--yes"},
			want: EnvDBOperationOptions{Kind: "reset", TargetID: "e1", Confirmed: true, Format: FormatTable}},
		{name: "reset -y", kind: keyhold.OpReset, args: []string{"e1", "-y", "-o", "json"},
			want: EnvDBOperationOptions{Kind: "reset", TargetID: "e1", Confirmed: true, Format: FormatJSON}},
		{name: "reset needs --yes", kind: keyhold.OpReset, args: []string{"e1"},
			wantErr: "resetting environment e1 deletes all its rows, files and backups (and unlinks its enterprise policy, if any): pass --yes to confirm"},
		{name: "negative timeout", kind: keyhold.OpReset, args: []string{"e1", "--yes", "--timeout", "-1s"}, wantErr: "--timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, dbOpCmd(tt.kind), tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// fakeBackups answers the backup commands: its backups, and an operation
// that WaitOperation finds at polls (the last one ends it).
type fakeBackups struct {
	backups  []*keyhold.Backup
	startErr error
	polls    []*keyhold.Operation
	waitErr  error
	calls    []string
}

func (f *fakeBackups) client() func() (keyhold.BackupClient, error) {
	return func() (keyhold.BackupClient, error) { return f, nil }
}

func (f *fakeBackups) CreateBackup(_ context.Context, envID, label string) (*keyhold.Backup, error) {
	f.calls = append(f.calls, "create "+envID+" "+label)
	return f.backups[0], f.startErr
}

func (f *fakeBackups) ListBackups(_ context.Context, envID string) ([]*keyhold.Backup, error) {
	f.calls = append(f.calls, "list "+envID)
	return f.backups, nil
}

func (f *fakeBackups) DeleteBackup(_ context.Context, envID, backupID string) error {
	f.calls = append(f.calls, "delete "+envID+" "+backupID)
	return f.startErr
}

func (f *fakeBackups) start(call string) (*keyhold.Operation, error) {
	f.calls = append(f.calls, call)
	if f.startErr != nil {
		return nil, f.startErr
	}
	op := *f.polls[0]
	return &op, nil
}

func (f *fakeBackups) RestoreBackup(_ context.Context, targetID, backupID string) (*keyhold.Operation, error) {
	return f.start("restore " + targetID + " " + backupID)
}

func (f *fakeBackups) CopyEnvironment(_ context.Context, targetID, sourceID string) (*keyhold.Operation, error) {
	return f.start("copy " + targetID + " " + sourceID)
}

func (f *fakeBackups) ResetEnvironment(_ context.Context, envID string) (*keyhold.Operation, error) {
	return f.start("reset " + envID)
}

func (f *fakeBackups) WaitOperation(_ context.Context, id string, _ time.Duration, progress func(*keyhold.Operation)) (*keyhold.Operation, error) {
	for _, op := range f.polls {
		progress(op)
	}
	return f.polls[len(f.polls)-1], f.waitErr
}

func backupsAt() (time.Time, []*keyhold.Backup) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return at, []*keyhold.Backup{
		{ID: "b2", EnvID: "e1", CreatedAt: at.Add(time.Hour), ExpiresAt: at.Add(time.Hour + keyhold.BackupRetentionProduction), Rows: 3},
		{ID: "b1", EnvID: "e1", Label: "before\tthe upgrade", CreatedAt: at, ExpiresAt: at.Add(keyhold.BackupRetentionProduction), Rows: 2, Files: 1, Bytes: 1000},
	}
}

func TestBackupRun(t *testing.T) {
	_, bs := backupsAt()
	t.Run("create", func(t *testing.T) {
		for format, want := range map[Format]string{
			FormatID:    "b2\n",
			FormatTable: "ID: b2\nEnvironment: e1\nLabel: -\nTaken: 2026-01-02T04:04:05Z\nExpires: 2026-01-30T04:04:05Z\nRows: 3\nFiles: 0\nBytes: 0\n",
			FormatJSON:  `"backupPointDateTime": "2026-01-02T04:04:05Z"`,
		} {
			f := &fakeBackups{backups: bs}
			streams, out, _ := testIO("")
			err := backupCreateRun(&BackupCreateOptions{IO: streams, Ctx: context.Background(), Client: f.client(), Format: format, EnvID: "e1", Label: "x"})
			if err != nil || !strings.Contains(squash(out.String()), want) || !reflect.DeepEqual(f.calls, []string{"create e1 x"}) {
				t.Errorf("-o %s: %v, %q, printed:\n%s\nwant %q", format, err, f.calls, out, want)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		for format, want := range map[Format]string{
			FormatID: "b2\nb1\n",
			FormatTable: "ID LABEL TAKEN EXPIRES ROWS FILES BYTES\n" +
				"b2 - 2026-01-02T04:04:05Z 2026-01-30T04:04:05Z 3 0 0\n" +
				"b1 before?the upgrade 2026-01-02T03:04:05Z 2026-01-30T03:04:05Z 2 1 1000\n",
		} {
			f := &fakeBackups{backups: bs}
			streams, out, _ := testIO("")
			if err := backupListRun(&BackupListOptions{IO: streams, Ctx: context.Background(), Client: f.client(), Format: format, EnvID: "e1"}); err != nil {
				t.Fatal(err)
			}
			if got := squash(out.String()); got != want {
				t.Errorf("-o %s printed:\n%s\nwant:\n%s", format, got, want)
			}
		}
		for format, want := range map[Format]string{FormatJSON: "[]\n", FormatTable: "No backups\n", FormatID: ""} {
			streams, out, _ := testIO("")
			if err := backupListRun(&BackupListOptions{IO: streams, Ctx: context.Background(), Client: (&fakeBackups{}).client(), Format: format, EnvID: "e1"}); err != nil || out.String() != want {
				t.Errorf("no backups, -o %s: %v, %q; want %q", format, err, out, want)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		f := &fakeBackups{}
		streams, out, _ := testIO("")
		if err := backupDeleteRun(&BackupDeleteOptions{IO: streams, Ctx: context.Background(), Client: f.client(), EnvID: "e1", BackupID: "b1"}); err != nil ||
			out.String() != "Deleted backup b1 of environment e1\n" || !reflect.DeepEqual(f.calls, []string{"delete e1 b1"}) {
			t.Fatalf("delete: %v, %q, %q", err, f.calls, out)
		}
		f = &fakeBackups{startErr: keyhold.Errorf(keyhold.CodeBackupNotFound, "environment e1 has no backup \"b1\"")}
		streams, out, _ = testIO("")
		if err := backupDeleteRun(&BackupDeleteOptions{IO: streams, Ctx: context.Background(), Client: f.client(), EnvID: "e1", BackupID: "b1"}); keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound || out.Len() != 0 {
			t.Fatalf("delete of an unknown backup: %v, %q", err, out)
		}
	})
}

func dbPolls(kind string) []*keyhold.Operation {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	op := func(state keyhold.OperationState, step string) *keyhold.Operation {
		o := &keyhold.Operation{ID: "op-1", Kind: kind, Target: "e1", State: state, Step: step, CreatedAt: at, UpdatedAt: at}
		if state != keyhold.OperationRunning {
			o.FinishedAt = at.Add(time.Second)
		}
		return o
	}
	return []*keyhold.Operation{op(keyhold.OperationRunning, "snapshot"), op(keyhold.OperationRunning, "restore"), op(keyhold.OperationSucceeded, "")}
}

func TestEnvRestoreCopyResetRun(t *testing.T) {
	run := func(f *fakeBackups, kind string, format Format, noWait bool) (string, string, error) {
		streams, out, errOut := testIO("")
		err := envDBOperationRun(&EnvDBOperationOptions{IO: streams, Ctx: context.Background(), Client: f.client(), Format: format, Kind: kind,
			TargetID: "e1", SourceID: "src", BackupID: "b1", Confirmed: true, NoWait: noWait})
		return out.String(), errOut.String(), err
	}
	for _, kind := range []string{keyhold.OpRestore, keyhold.OpCopy, keyhold.OpReset} {
		t.Run(kind, func(t *testing.T) {
			call := map[string]string{keyhold.OpRestore: "restore e1 b1", keyhold.OpCopy: "copy e1 src", keyhold.OpReset: "reset e1"}[kind]
			f := &fakeBackups{polls: dbPolls(kind)}
			out, progress, err := run(f, kind, FormatTable, false)
			if err != nil || !reflect.DeepEqual(f.calls, []string{call}) {
				t.Fatalf("%v, %q; want %q", err, f.calls, call)
			}
			if want := kind + " op-1: Running, step snapshot, 0s\n" + kind + " op-1: Running, step restore, 0s\n" + kind + " op-1: Succeeded, 0s\n"; progress != want {
				t.Errorf("progress:\n%s\nwant:\n%s", progress, want)
			}
			for _, w := range []string{"Kind: " + kind, "State: Succeeded", "Finished: 2026-01-02T03:04:06Z"} {
				if !strings.Contains(squash(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}

			f = &fakeBackups{polls: dbPolls(kind)}
			if out, progress, err = run(f, kind, FormatTable, true); err != nil || progress != "" ||
				out != "Started "+kind+" operation op-1 on e1\nFollow it with: keyhold operation wait op-1\n" {
				t.Errorf("--no-wait: %v, %q, %q", err, out, progress)
			}
			f = &fakeBackups{polls: dbPolls(kind)}
			if out, _, err = run(f, kind, FormatID, true); err != nil || out != "op-1\n" {
				t.Errorf("--no-wait -o id: %v, %q", err, out)
			}
		})
	}
	t.Run("failed", func(t *testing.T) {
		polls := dbPolls(keyhold.OpRestore)
		last := polls[len(polls)-1]
		last.State, last.ErrorCode, last.ErrorMsg = keyhold.OperationFailed, keyhold.CodeEnvironmentLocked, "environment e1 is locked"
		f := &fakeBackups{polls: polls, waitErr: &keyhold.Error{Code: keyhold.CodeEnvironmentLocked, Message: "restore operation op-1 failed: environment e1 is locked"}}
		out, _, err := run(f, keyhold.OpRestore, FormatJSON, false)
		if got := errorText(err); got != "EnvironmentLocked: restore operation op-1 failed: environment e1 is locked" {
			t.Fatalf("error = %q", got)
		}
		if !strings.Contains(out, `"state": "Failed"`) {
			t.Errorf("the failed operation was not printed: %s", out)
		}
	})
	t.Run("refused", func(t *testing.T) {
		f := &fakeBackups{startErr: keyhold.Errorf(keyhold.CodeBadRequest, "environment e1 is a Production environment: only a Sandbox can be reset")}
		out, progress, err := run(f, keyhold.OpReset, FormatTable, false)
		if keyhold.ErrorCode(err) != keyhold.CodeBadRequest || out+progress != "" {
			t.Fatalf("%v, %q, %q", err, out, progress)
		}
	})
}

// startServerOn is startServer with the server's database in PostgreSQL
// when dsn is set.
func startServerOn(t *testing.T, dsn string) string {
	t.Helper()
	return startServerWith(t, server.Config{PostgresDSN: dsn})
}

// startServerWith runs a server with cfg on a free port and a fresh data
// directory (cfg's Addr and DataDir are set here, and its output
// discarded), stops it when the test ends, and returns its bootstrap
// file once it is there. A server that returns before then fails the
// test.
func startServerWith(t *testing.T, cfg server.Config) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.DataDir = addr, t.TempDir()
	cfg.Logger, cfg.Stdout = slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s of its context ending")
		}
	})
	path := filepath.Join(cfg.DataDir, "bootstrap.json")
	waitCtx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	go func() {
		select {
		case err := <-done:
			done <- err // for Cleanup
			t.Errorf("server.Run returned early: %v", err)
			stop()
		case <-waitCtx.Done():
		}
	}()
	if _, err := waitForServer(waitCtx, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBackupStack runs the backup commands against a real server, on
// SQLite and PostgreSQL: backup create and list, a restore that brings
// the data back, a copy, a reset refused without --yes (nothing changes)
// and done with it, and a backup deleted.
func TestBackupStack(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var dsn string
			if backend == "postgres" {
				dsn = storetest.NewPostgresDatabase(t).DSN // skips without PostgreSQL
			}
			testBackupStack(t, startServerOn(t, dsn))
		})
	}
}

func testBackupStack(t *testing.T, bootstrap string) {
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	var prod, test, sandbox keyhold.Environment
	s.okJSON(&prod, "env", "create", "--name", "Contoso", "--location", "europe")
	s.okJSON(&test, "env", "create", "--name", "Test", "--location", "europe")
	s.okJSON(&sandbox, "env", "create", "--name", "Sandbox", "--location", "europe", "--sku", "Sandbox")
	s.ok("row", "put", prod.ID, "accounts", "a1", "--data", `{"name":"Fabrikam"}`)
	file := filepath.Join(t.TempDir(), "f.bin")
	content := pseudoRandom(1<<20 + 1)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	s.ok("file", "put", prod.ID, "f.bin", file)

	// Create and list.
	var b keyhold.Backup
	s.okJSON(&b, "env", "backup", "create", prod.ID, "--label", "before the upgrade")
	if b.ID == "" || b.EnvID != prod.ID || b.Label != "before the upgrade" || b.Rows != 1 || b.Files != 1 || b.Bytes != int64(len(content)) {
		t.Fatalf("backup create: %+v", b)
	}
	id := strings.TrimSpace(s.ok("env", "backup", "create", prod.ID, "-o", "id"))
	if out := s.ok("env", "backup", "list", prod.ID, "-o", "id"); out != id+"\n"+b.ID+"\n" {
		t.Fatalf("backup list -o id = %q, want %s then %s", out, id, b.ID)
	}
	out := squash(s.ok("env", "backup", "list", prod.ID))
	if !strings.Contains(out, "ID LABEL TAKEN EXPIRES ROWS FILES BYTES") || !strings.Contains(out, b.ID+" before the upgrade ") {
		t.Fatalf("backup list:\n%s", out)
	}

	// Overwrite, restore (waited for), read back.
	s.ok("row", "put", prod.ID, "accounts", "a1", "--data", `{"name":"changed"}`)
	s.ok("row", "put", prod.ID, "accounts", "a2", "--data", `{"name":"new"}`)
	code, stdout, stderr := s.run("", "env", "restore", prod.ID, "--backup", b.ID)
	if code != 0 || !strings.Contains(squash(stdout), "Kind: restore") || !strings.Contains(squash(stdout), "State: Succeeded") ||
		!strings.Contains(stderr, "restore ") || !strings.Contains(stderr, "Succeeded") {
		t.Fatalf("env restore: exit %d\n%s\n%s", code, stdout, stderr)
	}
	wantData := func(t *testing.T, envID string) {
		t.Helper()
		if got := s.ok("row", "get", envID, "accounts", "a1"); got != "{\n  \"name\": \"Fabrikam\"\n}\n" {
			t.Fatalf("row a1 of %s = %q", envID, got)
		}
		s.fails(1, "Error: RowNotFound: ", "row", "get", envID, "accounts", "a2")
		if got := s.ok("file", "get", envID, "f.bin", "--out", "-"); got != string(content) {
			t.Fatalf("f.bin of %s: %d bytes, want the %d backed up", envID, len(got), len(content))
		}
	}
	wantData(t, prod.ID)
	s.fails(1, "Error: BackupNotFound: ", "env", "restore", prod.ID, "--backup", "nope")

	// Copy, without waiting, then wait.
	s.ok("row", "put", test.ID, "accounts", "a2", "--data", `{"name":"only in the target"}`)
	op := strings.TrimSpace(s.ok("env", "copy", prod.ID, test.ID, "--no-wait", "-o", "id"))
	if out := s.ok("operation", "wait", op, "-o", "json"); !strings.Contains(out, `"state": "Succeeded"`) || !strings.Contains(out, `"kind": "copy"`) {
		t.Fatalf("operation wait of the copy:\n%s", out)
	}
	wantData(t, test.ID)
	s.fails(2, "can't be copied onto itself", "env", "copy", test.ID, test.ID)

	// Reset: refused without --yes, and nothing changes; then done.
	s.ok("row", "put", sandbox.ID, "accounts", "a1", "--data", `{"name":"sandbox"}`)
	sb := strings.TrimSpace(s.ok("env", "backup", "create", sandbox.ID, "-o", "id"))
	before := s.ok("env", "backup", "list", sandbox.ID, "-o", "json")
	s.fails(2, "resetting environment "+sandbox.ID+" deletes all its rows, files and backups", "env", "reset", sandbox.ID)
	if got := s.ok("row", "get", sandbox.ID, "accounts", "a1"); got != "{\n  \"name\": \"sandbox\"\n}\n" {
		t.Fatalf("a refused reset changed row a1: %q", got)
	}
	if got := s.ok("env", "backup", "list", sandbox.ID, "-o", "json"); got != before {
		t.Fatalf("a refused reset changed the backups:\n%s\nwas:\n%s", got, before)
	}
	if !strings.Contains(before, sb) {
		t.Fatalf("backup list of the Sandbox lacks %s:\n%s", sb, before)
	}
	// A Production environment is refused by the server; its data stays.
	s.fails(1, "Error: BadRequest: ", "env", "reset", prod.ID, "--yes")
	wantData(t, prod.ID)
	if out := squash(s.ok("env", "reset", sandbox.ID, "--yes")); !strings.Contains(out, "Kind: reset") || !strings.Contains(out, "State: Succeeded") {
		t.Fatalf("env reset --yes:\n%s", out)
	}
	s.fails(1, "Error: RowNotFound: ", "row", "get", sandbox.ID, "accounts", "a1")
	if got := s.ok("env", "backup", "list", sandbox.ID); got != "No backups\n" {
		t.Fatalf("backups after the reset: %q", got)
	}

	// Delete a backup.
	if out := s.ok("env", "backup", "delete", prod.ID, id); out != "Deleted backup "+id+" of environment "+prod.ID+"\n" {
		t.Fatalf("backup delete printed %q", out)
	}
	s.fails(1, "Error: BackupNotFound: ", "env", "backup", "delete", prod.ID, id)
	if out := s.ok("env", "backup", "list", prod.ID, "-o", "id"); out != b.ID+"\n" {
		t.Fatalf("backup list after the delete = %q", out)
	}
}
