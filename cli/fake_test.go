package cli

import (
	"context"
	"encoding/json"
	"io"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// fakeClient stands in for a server where a test needs what the real one
// can't easily be made to do (a stream cut short, a crafted display name).
// Methods it doesn't override panic on the nil embedded interface.
type fakeClient struct {
	keyhold.APIClient

	token    func(scope string) (*keyhold.Token, error)
	envs     []*keyhold.Environment
	audit    []*keyhold.AuditEntry
	coverage *keyhold.EncryptionCoverage
	openFile func(envID, name string) (*keyhold.FileInfo, io.ReadCloser, error)
	getRow   func(envID, table, id string) (*keyhold.Row, error)
	putRow   func(envID, table, id string, data json.RawMessage) (*keyhold.Row, error)
}

func (c *fakeClient) PutRow(_ context.Context, envID, table, id string, data json.RawMessage) (*keyhold.Row, error) {
	return c.putRow(envID, table, id, data)
}

func (c *fakeClient) GetRow(_ context.Context, envID, table, id string) (*keyhold.Row, error) {
	return c.getRow(envID, table, id)
}

func (c *fakeClient) Token(_ context.Context, scope string) (*keyhold.Token, error) {
	return c.token(scope)
}

func (c *fakeClient) ListEnvironments(context.Context) ([]*keyhold.Environment, error) {
	return c.envs, nil
}

func (c *fakeClient) EncryptionCoverage(context.Context, string) (*keyhold.EncryptionCoverage, error) {
	return c.coverage, nil
}

func (c *fakeClient) ListAudit(context.Context, keyhold.AuditFilter) ([]*keyhold.AuditEntry, error) {
	return c.audit, nil
}

func (c *fakeClient) OpenFile(_ context.Context, envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
	return c.openFile(envID, name)
}

// services returns a Factory.Client-style function yielding c.
func (c *fakeClient) services() func() (keyhold.EnvironmentClient, error) {
	return func() (keyhold.EnvironmentClient, error) { return c, nil }
}

// runRow runs args (starting "row") under the root's global flags against
// a row group holding only cmd, whose runF hands its options c (the
// Factory's client is the http package's, which c can't stand in for), and
// returns the exit code as Run would.
func (c *fakeClient) runRow(f *Factory, cmd *cobra.Command, args []string) int {
	row := newGroup("row", "")
	row.AddCommand(cmd)
	root := newRootShell(f)
	root.AddCommand(row)
	return execute(context.Background(), f, root, args)
}
