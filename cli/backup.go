package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// The environment database commands: "env backup create|list|delete",
// and "env restore", "env copy" and "env reset", which start a durable
// operation and, unless --no-wait, follow it to its end as "env link"
// does. They use the http package's Client through the
// keyhold.BackupService contract.

// backupServices returns a function that connects with the saved login,
// as Factory.Client does, for the backup commands.
func backupServices(f *Factory) func() (keyhold.BackupClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.BackupClient { return c })
}

// addBackupEnvCommands adds "backup", "restore", "copy" and "reset" to
// the env command group.
func addBackupEnvCommands(env *cobra.Command, f *Factory) *cobra.Command {
	backup := newGroup("backup", "Take, list and delete backups of an environment")
	backup.AddCommand(newCmdBackupCreate(f, nil), newCmdBackupList(f, nil), newCmdBackupDelete(f, nil))
	env.AddCommand(backup,
		newCmdEnvDBOperation(f, nil, keyhold.OpRestore),
		newCmdEnvDBOperation(f, nil, keyhold.OpCopy),
		newCmdEnvDBOperation(f, nil, keyhold.OpReset))
	return env
}

// BackupCreateOptions are the parsed arguments of "keyhold env backup
// create".
type BackupCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BackupClient, error)
	Format Format

	EnvID string
	Label string
}

func newCmdBackupCreate(f *Factory, runF func(*BackupCreateOptions) error) *cobra.Command {
	opts := &BackupCreateOptions{IO: f.IO, Client: backupServices(f)}
	cmd := &cobra.Command{
		Use:   "create <env> [--label LABEL]",
		Short: "Take a backup of an environment now",
		Long: `Take a backup of an environment's rows and files now. The backup holds the
data exactly as stored, encrypted, and is protected by whatever protects the
environment's keys: a customer-managed key protects its backups too.

It is kept 28 days for a Production environment and 7 days for the others,
and deleted with its environment. The environment must be Enabled.`,
		Example: `  keyhold env backup create $ENV --label "before the upgrade"
  BACKUP=$(keyhold env backup create $ENV -o id)`,
		Args: exactArgs("env"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID = args[0]
			if len(opts.Label) > keyhold.MaxBackupLabel {
				return usageErrorf("--label is %d bytes long: use at most %d", len(opts.Label), keyhold.MaxBackupLabel)
			}
			if runF != nil {
				return runF(opts)
			}
			return backupCreateRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Label, "label", "", "A `LABEL` that says what the backup is for")
	return cmd
}

func backupCreateRun(opts *BackupCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	b, err := c.CreateBackup(opts.Ctx, opts.EnvID, opts.Label)
	if err != nil {
		return err
	}
	return printBackup(opts.IO.Out, opts.Format, b)
}

// BackupListOptions are the parsed arguments of "keyhold env backup list".
type BackupListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BackupClient, error)
	Format Format

	EnvID string
}

func newCmdBackupList(f *Factory, runF func(*BackupListOptions) error) *cobra.Command {
	opts := &BackupListOptions{IO: f.IO, Client: backupServices(f)}
	return &cobra.Command{
		Use:     "list <env>",
		Aliases: []string{"ls"},
		Short:   "List an environment's backups, newest first",
		Args:    exactArgs("env"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return backupListRun(opts)
		},
	}
}

func backupListRun(opts *BackupListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	bs, err := c.ListBackups(opts.Ctx, opts.EnvID)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		if bs == nil {
			bs = []*keyhold.Backup{} // [] rather than null
		}
		return printJSON(opts.IO.Out, bs)
	case FormatID:
		for _, b := range bs {
			if err := printIDs(opts.IO.Out, b.ID); err != nil {
				return err
			}
		}
		return nil
	}
	if len(bs) == 0 {
		_, err := fmt.Fprintln(opts.IO.Out, "No backups")
		return err
	}
	tw := newTable(opts.IO.Out)
	row(tw, "ID", "LABEL", "TAKEN", "EXPIRES", "ROWS", "FILES", "BYTES")
	for _, b := range bs {
		row(tw, b.ID, orDash(b.Label), timestamp(b.CreatedAt), timestamp(b.ExpiresAt), fmt.Sprint(b.Rows), fmt.Sprint(b.Files), fmt.Sprint(b.Bytes))
	}
	return tw.Flush()
}

// BackupDeleteOptions are the parsed arguments of "keyhold env backup
// delete".
type BackupDeleteOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BackupClient, error)

	EnvID    string
	BackupID string
}

func newCmdBackupDelete(f *Factory, runF func(*BackupDeleteOptions) error) *cobra.Command {
	opts := &BackupDeleteOptions{IO: f.IO, Client: backupServices(f)}
	return &cobra.Command{
		Use:   "delete <env> <backup>",
		Short: "Delete a backup of an environment",
		Long: `Delete a backup before it expires. The environment's data is not touched; the
keys of old epochs that nothing needs any more are destroyed with it.`,
		Args: exactArgs("env", "backup"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx = cmd.Context()
			opts.EnvID, opts.BackupID = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return backupDeleteRun(opts)
		},
	}
}

func backupDeleteRun(opts *BackupDeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteBackup(opts.Ctx, opts.EnvID, opts.BackupID); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Deleted backup %s of environment %s\n", cell(opts.BackupID), cell(opts.EnvID))
	return err
}

// printBackup writes one backup: indented JSON, its id, or one field per
// line.
func printBackup(w io.Writer, format Format, b *keyhold.Backup) error {
	switch format {
	case FormatJSON:
		return printJSON(w, b)
	case FormatID:
		return printIDs(w, b.ID)
	}
	tw := newTable(w)
	for _, r := range []struct{ k, v string }{
		{"ID:", b.ID},
		{"Environment:", b.EnvID},
		{"Label:", orDash(b.Label)},
		{"Taken:", timestamp(b.CreatedAt)},
		{"Expires:", timestamp(b.ExpiresAt)},
		{"Rows:", fmt.Sprint(b.Rows)},
		{"Files:", fmt.Sprint(b.Files)},
		{"Bytes:", fmt.Sprint(b.Bytes)},
	} {
		row(tw, r.k, r.v)
	}
	return tw.Flush()
}

// EnvDBOperationOptions are the parsed arguments of "keyhold env
// restore", "keyhold env copy" and "keyhold env reset".
type EnvDBOperationOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BackupClient, error)
	Format Format

	Kind     string // keyhold.OpRestore, OpCopy or OpReset
	TargetID string // the environment overwritten (reset: the one reset)
	SourceID string // copy: the environment copied
	BackupID string // restore: --backup
	// Confirmed is reset's --yes.
	Confirmed bool
	NoWait    bool
	Timeout   time.Duration
}

func newCmdEnvDBOperation(f *Factory, runF func(*EnvDBOperationOptions) error, kind string) *cobra.Command {
	opts := &EnvDBOperationOptions{IO: f.IO, Client: backupServices(f), Kind: kind}
	cmd := &cobra.Command{
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			switch opts.Kind {
			case keyhold.OpRestore:
				opts.TargetID = args[0]
				if err := requireFlags(cmd, "backup"); err != nil {
					return err
				}
			case keyhold.OpCopy:
				opts.SourceID, opts.TargetID = args[0], args[1]
				if opts.SourceID == opts.TargetID {
					return usageErrorf("the source and target are both %s: an environment can't be copied onto itself (to go back in time, restore a backup)", opts.SourceID)
				}
			case keyhold.OpReset:
				opts.TargetID = args[0]
				if !opts.Confirmed {
					return usageErrorf("resetting environment %s deletes all its rows, files and backups (and unlinks its enterprise policy, if any): pass --yes to confirm", opts.TargetID)
				}
			}
			if opts.Timeout < 0 {
				return usageErrorf("--timeout %s is negative: give a duration such as 30m, or 0 to wait as long as it takes", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return envDBOperationRun(opts)
		},
	}
	const waiting = `
The command waits until the operation ends and shows its progress; it exits 0
if it succeeds and 1 if it fails, printing why. With --no-wait it prints the
operation id and returns: follow it with "keyhold operation wait <id>".`
	switch kind {
	case keyhold.OpRestore:
		cmd.Use = "restore <target-env> --backup BACKUP [--no-wait]"
		cmd.Short = "Overwrite an environment with a backup"
		cmd.Long = `Overwrite an environment's rows and files with those of a backup: of the
environment itself, or of another environment of the tenant. A backup under a
customer-managed key can only go to its own environment or another one under
the same key (same key vault and key name). Both environments must be
Enabled. The target holds either all of its old data or all of the backup's,
never a mix.
` + waiting
		cmd.Example = `  keyhold env restore $ENV --backup $BACKUP
  OP=$(keyhold env restore $ENV --backup $BACKUP --no-wait -o id)`
		cmd.Args = exactArgs("target-env")
		cmd.Flags().StringVar(&opts.BackupID, "backup", "", "The `BACKUP` id (keyhold env backup list <env> shows them)")
	case keyhold.OpCopy:
		cmd.Use = "copy <source-env> <target-env> [--no-wait]"
		cmd.Short = "Overwrite an environment with another's current data"
		cmd.Long = `Overwrite the target environment's rows and files with the current data of the
source environment (a full copy). If the source is under a customer-managed
key, the target must be under the same key; a Support Investigation target
must be changed to that key first. Both environments must be Enabled.
` + waiting
		cmd.Example = `  keyhold env copy $PROD $TEST`
		cmd.Args = exactArgs("source-env", "target-env")
	case keyhold.OpReset:
		cmd.Use = "reset <env> --yes [--no-wait]"
		cmd.Short = "Delete a Sandbox's data and backups and return it to the platform's key"
		cmd.Long = `Reset a Sandbox environment: delete all its rows, files and backups, and, if it
is linked to an enterprise policy, return it to the platform's key (which
needs Reader on the policy, as an unlink does). Only a Sandbox can be reset,
and not while it is Locked. This cannot be undone, so it needs --yes; keyhold
never prompts, since stdin may not be a terminal.
` + waiting
		cmd.Example = `  keyhold env reset $SANDBOX --yes`
		cmd.Args = exactArgs("env")
		cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm that the environment's data and backups are deleted")
	}
	cmd.Flags().BoolVar(&opts.NoWait, "no-wait", false, "Print the operation id and return without waiting")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "Stop waiting after `DURATION` (exit 1; the operation goes on); 0 waits until it ends")
	return cmd
}

func envDBOperationRun(opts *EnvDBOperationOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var op *keyhold.Operation
	switch opts.Kind {
	case keyhold.OpRestore:
		op, err = c.RestoreBackup(opts.Ctx, opts.TargetID, opts.BackupID)
	case keyhold.OpCopy:
		op, err = c.CopyEnvironment(opts.Ctx, opts.TargetID, opts.SourceID)
	case keyhold.OpReset:
		op, err = c.ResetEnvironment(opts.Ctx, opts.TargetID)
	default:
		return fmt.Errorf("unknown environment operation %q", opts.Kind)
	}
	if err != nil {
		return err
	}
	if opts.NoWait {
		return printStarted(opts.IO.Out, opts.Format, op)
	}
	return waitAndPrint(opts.Ctx, opts.IO, opts.Format, c, op.ID, opts.Timeout)
}
