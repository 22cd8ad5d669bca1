package http

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold"
)

// The Client's backup, restore, copy and reset methods: it implements
// keyhold.BackupService over HTTPS (backup.go has the routes). Restore,
// copy and reset return the operation as the server accepted it; follow it
// with WaitOperation.

var _ keyhold.BackupService = (*Client)(nil)

// backupsPath is the path of an environment's backups, or of one of them.
func backupsPath(envID string, backupID ...string) string {
	return adminEnvPrefix + escape(append([]string{envID, backupsName}, backupID...)...)
}

// needID refuses an empty id before a request is made: it would name
// another path.
func needID(what, id string) error {
	if id == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the %s id is empty: give one (keyhold env list and keyhold env backup list show them)", what)
	}
	return nil
}

// CreateBackup takes a backup of the Enabled environment envID now, with
// an optional label (at most keyhold.MaxBackupLabel bytes of printable
// text), and returns it. Refusals: CodeEnvironmentNotFound,
// CodeEnvironmentLocked, CodeForbidden without the administrator role,
// CodeInvalidRequestContent for a bad label.
func (c *Client) CreateBackup(ctx context.Context, envID, label string) (*keyhold.Backup, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var b keyhold.Backup
	in := struct {
		Label string `json:"label"`
	}{label}
	if err := c.do(ctx, "POST", backupsPath(envID), in, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// ListBackups lists the backups of environment envID, newest first.
func (c *Client) ListBackups(ctx context.Context, envID string) ([]*keyhold.Backup, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var out listJSON[*keyhold.Backup]
	if err := c.do(ctx, "GET", backupsPath(envID), nil, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// GetBackup returns one backup of environment envID; CodeBackupNotFound if
// it has none with that id.
func (c *Client) GetBackup(ctx context.Context, envID, backupID string) (*keyhold.Backup, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	if err := needID("backup", backupID); err != nil {
		return nil, err
	}
	var b keyhold.Backup
	if err := c.do(ctx, "GET", backupsPath(envID, backupID), nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// DeleteBackup deletes the backup backupID of environment envID;
// CodeBackupNotFound if it has none such.
func (c *Client) DeleteBackup(ctx context.Context, envID, backupID string) error {
	if err := needID("environment", envID); err != nil {
		return err
	}
	if err := needID("backup", backupID); err != nil {
		return err
	}
	return c.do(ctx, "DELETE", backupsPath(envID, backupID), nil, nil)
}

// RestoreBackup starts overwriting environment targetID with the backup
// backupID (of targetID, or of another environment of the tenant that the
// rules let it go to) and returns the operation, Running. Refusals start
// nothing: CodeBackupNotFound, CodeEnvironmentLocked, CodeBadRequest (a
// backup under a customer-managed key that doesn't protect the target),
// CodeConflict (an operation already running on the target).
func (c *Client) RestoreBackup(ctx context.Context, targetID, backupID string) (*keyhold.Operation, error) {
	if err := needID("target environment", targetID); err != nil {
		return nil, err
	}
	if err := needID("backup", backupID); err != nil {
		return nil, err
	}
	return c.startEnvOperation(ctx, targetID, restoreName, struct {
		BackupID string `json:"backupId"`
	}{backupID})
}

// CopyEnvironment starts overwriting environment targetID with the current
// data of sourceID (a FullCopy) and returns the operation, Running.
// Refusals start nothing, as RestoreBackup's do; copying an environment
// onto itself is CodeBadRequest.
func (c *Client) CopyEnvironment(ctx context.Context, targetID, sourceID string) (*keyhold.Operation, error) {
	if err := needID("target environment", targetID); err != nil {
		return nil, err
	}
	if err := needID("source environment", sourceID); err != nil {
		return nil, err
	}
	return c.startEnvOperation(ctx, targetID, copyName, struct {
		SourceID string `json:"sourceEnvironmentId"`
		CopyType string `json:"copyType"`
	}{sourceID, copyTypeFull})
}

// ResetEnvironment starts deleting the data and backups of the Sandbox
// envID and returning it to the platform's key, and returns the operation,
// Running. Another type of environment is refused (CodeBadRequest), as is
// a Locked one.
func (c *Client) ResetEnvironment(ctx context.Context, envID string) (*keyhold.Operation, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	return c.startEnvOperation(ctx, envID, resetName, struct{}{})
}

// startEnvOperation posts in to …/environments/{envID}/{action}, which
// answers 202 with an operation, and returns it (read from its
// operation-location if the body lacks it).
func (c *Client) startEnvOperation(ctx context.Context, envID, action string, in any) (*keyhold.Operation, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	path := adminEnvPrefix + escape(envID, action) + "?api-version=" + defaultBAPAPIVersion
	op, id, err := c.postOperation(ctx, path, bytes.NewReader(b), "application/json")
	if op != nil || err != nil {
		return op, err
	}
	return c.GetOperation(ctx, id)
}
