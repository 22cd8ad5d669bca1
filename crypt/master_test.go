package crypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateMasterKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k, err := GenerateMasterKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Destroy()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("master key file mode = %v; want 0600", got)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.StdEncoding.EncodeToString(k.b[:]) + "\n"; string(text) != want {
		t.Fatal("master key file does not hold the key as standard base64 and a newline")
	}
	parsed, err := ParseMasterKey(text)
	if err != nil {
		t.Fatal(err)
	}
	defer parsed.Destroy()
	if !parsed.Equal(k) {
		t.Fatal("ParseMasterKey of the file differs from the key GenerateMasterKeyFile returned")
	}

	// O_EXCL: a second call must neither replace nor touch the key.
	if k2, err := GenerateMasterKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateMasterKeyFile over an existing file = %v, %v; want an error wrapping fs.ErrExist", k2, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, text) {
		t.Fatal("GenerateMasterKeyFile changed an existing file")
	}
}

func TestGenerateMasterKeyFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "master.key")
	if _, err := GenerateMasterKeyFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GenerateMasterKeyFile in a missing directory: error %v; want fs.ErrNotExist", err)
	}
}

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xc3}, KeySize)
	good := base64.StdEncoding.EncodeToString(key)
	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{name: "plain", text: good},
		{name: "newline", text: good + "\n"},
		{name: "surrounding space", text: " \t" + good + "\r\n\n"},
		{name: "empty", text: "", wantErr: "master key is empty"},
		{name: "only space", text: " \n\t", wantErr: "master key is empty"},
		{name: "url alphabet", text: strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, KeySize))), wantErr: "master key is not valid base64"},
		{name: "hex not base64", text: strings.Repeat("zz", KeySize) + "!", wantErr: "master key is not valid base64"},
		{name: "missing padding", text: strings.TrimRight(good, "="), wantErr: "master key is not valid base64"},
		{name: "31 bytes", text: base64.StdEncoding.EncodeToString(key[:31]), wantErr: "master key is 31 bytes; want 32"},
		{name: "33 bytes", text: base64.StdEncoding.EncodeToString(append(key, 0)), wantErr: "master key is 33 bytes; want 32"},
		{name: "64 bytes", text: base64.StdEncoding.EncodeToString(append(key, key...)), wantErr: "master key is 64 bytes; want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseMasterKey([]byte(tt.text))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseMasterKey: %v", err)
				}
				if !bytes.Equal(k.b[:], key) {
					t.Fatal("ParseMasterKey returned another key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseMasterKey error = %v; want %q", err, tt.wantErr)
			}
			if s := strings.TrimSpace(tt.text); len(s) >= 4 && strings.Contains(err.Error(), s[:4]) {
				t.Fatalf("error %q echoes the input", err)
			}
		})
	}
}
