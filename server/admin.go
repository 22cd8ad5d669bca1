package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/platform"
)

// ResetConfig configures ResetCredentials.
type ResetConfig struct {
	DataDir     string
	PostgresDSN string // empty: SQLite in DataDir
	// MasterKey, if set, is the base64 master key (KEYHOLD_MASTER_KEY);
	// else <DataDir>/master.key is read. Without either, nothing happens.
	MasterKey string
	// URL goes into the new bootstrap.json; empty: the old file's, else
	// https://DefaultAddr.
	URL   string
	Clock keyhold.Clock
}

// ResetCredentials is "keyhold admin reset-credentials": offline, it gives
// the bootstrap administrator a new client secret, removes its old ones,
// and writes the new credentials to <data>/bootstrap.json (0600). It is the
// way back in after bootstrap.json is lost or leaked, short of wiping the
// platform.
//
// It needs the master key that opens the data (it proves custody; it is
// never created here), and on SQLite it takes the data directory's lock,
// so it refuses while a server runs on the directory. A refusal changes
// nothing. It returns the path of the bootstrap file.
func ResetCredentials(ctx context.Context, cfg ResetConfig) (string, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a Keyhold data directory: give the directory keyhold serve uses with --data", dataDir)
	}
	onSQLite := cfg.PostgresDSN == ""
	dir, err := openDataDir(dataDir, onSQLite, onSQLite)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	master, _, err := readMasterKey(dataDir, cfg.MasterKey)
	if err != nil {
		return "", err
	}
	defer master.Destroy()
	if onSQLite {
		if fi, err := os.Stat(filepath.Join(dataDir, dbFile)); err != nil || fi.Size() == 0 {
			return "", fmt.Errorf("%s has no keyhold.db: give the directory keyhold serve uses with --data (or --postgres for a PostgreSQL server)", dataDir)
		}
	}
	store, err := openStore(ctx, Config{PostgresDSN: cfg.PostgresDSN}, dataDir)
	if err != nil {
		return "", err
	}
	defer store.Close()

	bootPath := filepath.Join(dataDir, bootstrapFile)
	b := Bootstrap{URL: "https://" + DefaultAddr, CAFile: filepath.Join(dataDir, "tls", "ca.pem")}
	if old, err := os.ReadFile(bootPath); err == nil {
		json.Unmarshal(old, &b) // keep its URL and CA file; the credentials are replaced below
	}
	if cfg.URL != "" {
		b.URL = cfg.URL
	}
	creds, err := platform.ResetBootstrapCredentials(ctx, store, master, cfg.Clock)
	if err != nil {
		return "", err
	}
	b.TenantID, b.SubscriptionID, b.ClientID, b.ClientSecret = creds.TenantID, creds.SubscriptionID, creds.ClientID, creds.ClientSecret
	if err := writeJSON0600(bootPath, b); err != nil {
		return "", fmt.Errorf("the new secret is set but %s could not be written (%w): fix that and run the command again", bootPath, err)
	}
	return bootPath, nil
}
