package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdFile(f *Factory) *cobra.Command {
	cmd := newGroup("file", "Upload and download an environment's files")
	cmd.AddCommand(
		newCmdFilePut(f, nil),
		newCmdFileGet(f, nil),
	)
	return cmd
}

// FilePutOptions are the parsed arguments of "keyhold file put".
type FilePutOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	EnvID string
	Name  string
	Path  string // local file, or "-" for stdin
}

func newCmdFilePut(f *Factory, runF func(*FilePutOptions) error) *cobra.Command {
	opts := &FilePutOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "put <env> <name> <path|->",
		Short: "Upload a file",
		Long: `Upload a local file, or stdin if the path is -, as the environment's file
<name>, creating or replacing it. The content is streamed, never held whole in
memory, and replaces an earlier version only once all of it is stored.`,
		Example: `  keyhold file put $ENV report.pdf ./report.pdf
  tar c docs | keyhold file put $ENV docs.tar -`,
		Args: exactArgs("env", "name", "path|-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID, opts.Name, opts.Path = args[0], args[1], args[2]
			if runF != nil {
				return runF(opts)
			}
			return filePutRun(opts)
		},
	}
}

func filePutRun(opts *FilePutOptions) error {
	r := opts.IO.In
	if opts.Path != "-" {
		f, err := os.Open(opts.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil {
			return err
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file: give a file, or - to read stdin", opts.Path)
		}
		r = f
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	info, err := c.PutFile(opts.Ctx, opts.EnvID, opts.Name, r)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, info)
	}
	fmt.Fprintf(opts.IO.Out, "Uploaded %s to %s (%d bytes, version %d)\n", info.Name, info.EnvID, info.Size, info.Version)
	return nil
}

// FileGetOptions are the parsed arguments of "keyhold file get".
type FileGetOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	EnvID string
	Name  string
	Out   string // local path, or "-" for stdout
}

func newCmdFileGet(f *Factory, runF func(*FileGetOptions) error) *cobra.Command {
	opts := &FileGetOptions{IO: f.IO, Client: services(f)}
	cmd := &cobra.Command{
		Use:   "get <env> <name> [--out PATH|-]",
		Short: "Download a file",
		Long: `Download the environment's file <name> to --out, or to stdout if --out is -.
Without --out it is saved as <name> in the current directory, and if --out
is a directory, as <name> in it.

The content is streamed to a temporary file beside the destination, which is
renamed into place only once the whole file has arrived and checked out, so a
failed download never leaves a partial file. A new file gets mode 0600.`,
		Example: `  keyhold file get $ENV report.pdf --out ./report.pdf
  keyhold file get $ENV docs.tar --out - | tar t`,
		Args: exactArgs("env", "name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID, opts.Name = args[0], args[1]
			if opts.Out == "" {
				// The name becomes a local path: refuse "..", "/etc/x" and
				// the like, which the server refuses anyway.
				if err := keyhold.ValidateItemName("file name", opts.Name); err != nil {
					return usageErrorf("%s; or give --out", keyhold.ErrorMessage(err))
				}
				opts.Out = opts.Name
			}
			if runF != nil {
				return runF(opts)
			}
			return fileGetRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Out, "out", "", "Write to `PATH`, or to stdout if - (default: ./<name>)")
	return cmd
}

func fileGetRun(opts *FileGetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	info, rc, err := c.OpenFile(opts.Ctx, opts.EnvID, opts.Name)
	if err != nil {
		return err
	}
	defer rc.Close()

	if opts.Out == "-" {
		n, err := io.Copy(opts.IO.Out, rc)
		if err != nil {
			return fmt.Errorf("downloading %s: %w", opts.Name, err)
		}
		return checkSize(opts.Name, info, n)
	}

	dest := opts.Out
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		if err := keyhold.ValidateItemName("file name", opts.Name); err != nil {
			return err
		}
		dest = filepath.Join(dest, opts.Name)
	}
	t, err := newTempFile(dest)
	if err != nil {
		return err
	}
	defer t.abort()
	if fi, err := os.Stat(dest); err == nil && fi.Mode().IsRegular() {
		// Replacing a file: keep its permissions.
		if err := t.Chmod(fi.Mode().Perm()); err != nil {
			return err
		}
	}
	n, err := io.Copy(t, rc)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", opts.Name, err)
	}
	if err := checkSize(opts.Name, info, n); err != nil {
		return err
	}
	if err := t.commit(); err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, info)
	}
	fmt.Fprintf(opts.IO.Out, "Downloaded %s to %s (%d bytes)\n", info.Name, dest, n)
	return nil
}

// checkSize fails a download whose length differs from the size the server
// announced: the stream was cut short.
func checkSize(name string, info *keyhold.FileInfo, n int64) error {
	if info != nil && n != info.Size {
		return fmt.Errorf("downloading %s: got %d bytes, expected %d: retry", name, n, info.Size)
	}
	return nil
}
