package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func TestNewCmdFilePut(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    FilePutOptions
		wantErr string
	}{
		{name: "path", args: []string{"e1", "report.pdf", "./r.pdf"}, want: FilePutOptions{EnvID: "e1", Name: "report.pdf", Path: "./r.pdf", Format: FormatTable}},
		{name: "stdin", args: []string{"e1", "report.pdf", "-", "-o", "json"}, want: FilePutOptions{EnvID: "e1", Name: "report.pdf", Path: "-", Format: FormatJSON}},
		{name: "missing path", args: []string{"e1", "report.pdf"}, wantErr: "is missing <path|->"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdFilePut, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdFileGet(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    FileGetOptions
		wantErr string
	}{
		{name: "out defaults to the name", args: []string{"e1", "report.pdf"}, want: FileGetOptions{EnvID: "e1", Name: "report.pdf", Out: "report.pdf", Format: FormatTable}},
		{name: "out path", args: []string{"e1", "report.pdf", "--out", "/tmp/x.pdf"}, want: FileGetOptions{EnvID: "e1", Name: "report.pdf", Out: "/tmp/x.pdf", Format: FormatTable}},
		{name: "stdout", args: []string{"e1", "report.pdf", "--out", "-"}, want: FileGetOptions{EnvID: "e1", Name: "report.pdf", Out: "-", Format: FormatTable}},
		{name: "unsafe name needs out", args: []string{"e1", "../etc/passwd"}, wantErr: `file name "../etc/passwd" is not valid`},
		{name: "unsafe name with out", args: []string{"e1", "../x", "--out", "x"}, want: FileGetOptions{EnvID: "e1", Name: "../x", Out: "x", Format: FormatTable}},
		{name: "-o is the output format, not the path", args: []string{"e1", "r.pdf", "-o", "r.pdf"}, wantErr: `invalid argument "r.pdf" for "-o, --output" flag`},
		{name: "missing name", args: []string{"e1"}, wantErr: "is missing <name>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdFileGet, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// failingReader yields its data, then err.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func (r *failingReader) Close() error { return nil }

func TestFileGetRun(t *testing.T) {
	errTampered := keyhold.Errorf("DecryptionFailed", "chunk 2 failed authentication")
	tests := []struct {
		name     string
		size     int64
		body     io.ReadCloser
		existing string // content of the destination before, if any
		want     string // content after ("" with wantErr: unchanged or absent)
		wantErr  string
	}{
		{name: "new file", size: 5, body: io.NopCloser(strings.NewReader("hello")), want: "hello"},
		{name: "replaces", size: 5, body: io.NopCloser(strings.NewReader("hello")), existing: "old", want: "hello"},
		{name: "read error leaves no file", size: 10, body: &failingReader{data: "hello", err: errTampered}, wantErr: "chunk 2 failed authentication"},
		{name: "read error keeps the old file", size: 10, body: &failingReader{data: "hello", err: errTampered}, existing: "old", wantErr: "DecryptionFailed"},
		{name: "short stream leaves no file", size: 10, body: io.NopCloser(strings.NewReader("hello")), wantErr: "got 5 bytes, expected 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "out.bin")
			if tt.existing != "" {
				if err := os.WriteFile(dest, []byte(tt.existing), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			c := &fakeClient{openFile: func(envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
				return &keyhold.FileInfo{EnvID: envID, Name: name, Size: tt.size, Version: 1}, tt.body, nil
			}}
			streams, out, _ := testIO("")
			err := fileGetRun(&FileGetOptions{IO: streams, Ctx: context.Background(), Client: c.services(),
				Format: FormatTable, EnvID: "e1", Name: "f.bin", Out: dest})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				assertDir(t, dir, tt.existing != "")
				if tt.existing != "" {
					assertFile(t, dest, tt.existing, 0o640)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o600)
			if tt.existing != "" {
				mode = 0o640
			}
			assertFile(t, dest, tt.want, mode)
			assertDir(t, dir, true)
			if want := "Downloaded f.bin to " + dest + " (5 bytes)\n"; out.String() != want {
				t.Errorf("output = %q, want %q", out, want)
			}
		})
	}
}

func TestFileGetRunStdoutAndDir(t *testing.T) {
	c := &fakeClient{openFile: func(envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
		return &keyhold.FileInfo{EnvID: envID, Name: name, Size: 5}, io.NopCloser(strings.NewReader("hello")), nil
	}}
	streams, out, _ := testIO("")
	opts := &FileGetOptions{IO: streams, Ctx: context.Background(), Client: c.services(), EnvID: "e1", Name: "f.bin", Out: "-"}
	if err := fileGetRun(opts); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello" {
		t.Errorf("stdout = %q, want only the content", out)
	}

	dir := t.TempDir()
	opts.Out = dir
	if err := fileGetRun(opts); err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(dir, "f.bin"), "hello", 0o600)
}

func TestFileGetRunNotFoundCreatesNothing(t *testing.T) {
	c := &fakeClient{openFile: func(envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
		return nil, nil, keyhold.Errorf(keyhold.CodeFileNotFound, "file %q not found", name)
	}}
	dir := t.TempDir()
	streams, _, _ := testIO("")
	err := fileGetRun(&FileGetOptions{IO: streams, Ctx: context.Background(), Client: c.services(), EnvID: "e1", Name: "f.bin", Out: filepath.Join(dir, "f.bin")})
	if keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
		t.Fatalf("error = %v, want %s", err, keyhold.CodeFileNotFound)
	}
	assertDir(t, dir, false)
}

func TestFilePutRunRefusesADirectory(t *testing.T) {
	streams, _, _ := testIO("")
	err := filePutRun(&FilePutOptions{IO: streams, Ctx: context.Background(),
		Client: func() (keyhold.EnvironmentClient, error) { return nil, errors.New("must not connect") },
		EnvID:  "e1", Name: "d", Path: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Fatalf("error = %v, want a not-a-regular-file error", err)
	}
}

// assertFile checks a file's content and permissions.
func assertFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s holds %q, want %q", path, b, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

// assertDir checks that dir holds no temporary files, and one file or none.
func assertDir(t *testing.T, dir string, wantOne bool) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if n := len(names); wantOne && n != 1 || !wantOne && n != 0 {
		t.Errorf("%s holds %q, want %s", dir, names, map[bool]string{true: "one file", false: "nothing"}[wantOne])
	}
}
