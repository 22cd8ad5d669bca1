package cli

import (
	"testing"
	"time"

	"github.com/keyhold/keyhold/server"
)

func TestNewCmdServePKCS11(t *testing.T) {
	tests := []struct {
		name    string
		env     testEnv
		args    []string
		want    ServeOptions
		wantErr string
	}{
		{name: "token, PIN from the environment", env: testEnv{"KEYHOLD_PKCS11_PIN": "1234"},
			args: []string{"--pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so", "--pkcs11-token", "keyhold"},
			want: ServeOptions{Addr: "127.0.0.1:8443", DataDir: "./keyhold-data", LogFormat: "text",
				HealthInterval: defaultHealthInterval, KeyCacheTTL: defaultKeyCacheTTL,
				LockGraceProduction: 28 * 24 * time.Hour, LockGraceOther: server.KeepLocked,
				PKCS11Module: "/usr/lib/softhsm/libsofthsm2.so", PKCS11Token: "keyhold", PKCS11PIN: "1234", VaultDomain: "vault.localhost"}},
		{name: "module without token", args: []string{"--pkcs11-module", "/lib.so"}, wantErr: "--pkcs11-module needs --pkcs11-token"},
		{name: "token without module", args: []string{"--pkcs11-token", "keyhold"}, wantErr: "--pkcs11-token needs --pkcs11-module"},
		{name: "no PIN flag", args: []string{"--pkcs11-pin", "1234"}, wantErr: "unknown flag: --pkcs11-pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, tt.env, newCmdServe, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}
