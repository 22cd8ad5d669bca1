package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdRow(f *Factory) *cobra.Command {
	cmd := newGroup("row", "Read and write an environment's rows")
	cmd.AddCommand(
		newCmdRowPut(f, nil),
		newCmdRowGet(f, nil),
		newCmdRowDelete(f, nil),
	)
	return cmd
}

// RowPutOptions are the parsed arguments of "keyhold row put".
type RowPutOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	EnvID string
	Table string
	ID    string
	Data  string // --data: the JSON document itself
	File  string // --file: a file holding it, or "-" for stdin
}

func newCmdRowPut(f *Factory, runF func(*RowPutOptions) error) *cobra.Command {
	opts := &RowPutOptions{IO: f.IO, Client: services(f)}
	cmd := &cobra.Command{
		Use:   "put <env> <table> <id> (--data JSON | --file FILE | --file -)",
		Short: "Store a JSON document as a row",
		Long: fmt.Sprintf(`Store a JSON document (at most %d bytes) as a row, creating or replacing it.
The server encrypts it under the environment's key.`, keyhold.MaxRowBytes),
		Example: `  keyhold row put $ENV accounts a1 --data '{"name":"Fabrikam"}'
  keyhold row put $ENV accounts a1 --file account.json
  echo '{"name":"Fabrikam"}' | keyhold row put $ENV accounts a1 --file -`,
		Args: exactArgs("env", "table", "id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.EnvID, opts.Table, opts.ID = args[0], args[1], args[2]
			data, file := cmd.Flags().Changed("data"), cmd.Flags().Changed("file")
			switch {
			case data && file:
				return usageErrorf("give the document with --data or --file, not both")
			case !data && !file:
				return usageErrorf("give the document with --data JSON, --file FILE, or --file - to read stdin")
			case file && opts.File == "":
				return usageErrorf("--file needs a file name, or - to read stdin")
			}
			if runF != nil {
				return runF(opts)
			}
			return rowPutRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Data, "data", "", "The row's `JSON` document")
	cmd.Flags().StringVar(&opts.File, "file", "", "Read the document from `FILE`, or from stdin if -")
	return cmd
}

func rowPutRun(opts *RowPutOptions) error {
	doc, err := readDocument(opts)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	r, err := c.PutRow(opts.Ctx, opts.EnvID, opts.Table, opts.ID, doc)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, r)
	case FormatID:
		return printIDs(opts.IO.Out, r.ID)
	}
	fmt.Fprintf(opts.IO.Out, "Stored row %s/%s in %s (version %d)\n", r.Table, r.ID, r.EnvID, r.Version)
	return nil
}

// readDocument returns the row document from --data or --file, checked to be
// JSON no larger than keyhold.MaxRowBytes.
func readDocument(opts *RowPutOptions) (json.RawMessage, error) {
	doc, from := []byte(opts.Data), "--data"
	if opts.File != "" {
		var r io.Reader = opts.IO.In
		from = "stdin"
		if opts.File != "-" {
			f, err := os.Open(opts.File)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r, from = f, opts.File
		}
		// Read one byte past the limit to tell "too large" from "just fits"
		// without holding more than that.
		var err error
		doc, err = io.ReadAll(io.LimitReader(r, keyhold.MaxRowBytes+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", from, err)
		}
	}
	if len(doc) > keyhold.MaxRowBytes {
		return nil, keyhold.Errorf(keyhold.CodeRequestTooLarge, "the document from %s is larger than %d bytes: store large content as a file", from, keyhold.MaxRowBytes)
	}
	doc = bytes.TrimSpace(doc)
	if !json.Valid(doc) {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the document from %s is not valid JSON: check quoting and braces", from)
	}
	return doc, nil
}

// RowGetOptions are the parsed arguments of "keyhold row get".
type RowGetOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)
	Format Format

	// Document: no -o was given, so the document itself is printed, which
	// is what a user of "row get" most often wants; an explicit -o table
	// prints the row as a table, as the other commands do.
	Document bool

	EnvID string
	Table string
	ID    string
}

func newCmdRowGet(f *Factory, runF func(*RowGetOptions) error) *cobra.Command {
	opts := &RowGetOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "get <env> <table> <id>",
		Short: "Print a row's JSON document",
		Long: `Print a row's JSON document, indented. With -o table, print the row's table,
id, version, update time and document size; with -o id, only its id; with
-o json, the row with its version and update time, the document under "data".`,
		Args: exactArgs("env", "table", "id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			opts.Document = !cmd.Flags().Changed("output")
			opts.EnvID, opts.Table, opts.ID = args[0], args[1], args[2]
			if runF != nil {
				return runF(opts)
			}
			return rowGetRun(opts)
		},
	}
}

func rowGetRun(opts *RowGetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	r, err := c.GetRow(opts.Ctx, opts.EnvID, opts.Table, opts.ID)
	if err != nil {
		return err
	}
	switch {
	case opts.Format == FormatJSON:
		return printJSON(opts.IO.Out, r)
	case opts.Format == FormatID:
		return printIDs(opts.IO.Out, r.ID)
	case !opts.Document:
		w := newTable(opts.IO.Out)
		row(w, "TABLE", "ID", "VERSION", "UPDATED", "BYTES")
		row(w, r.Table, r.ID, fmt.Sprint(r.Version), timestamp(r.UpdatedAt), fmt.Sprint(len(r.Data)))
		return w.Flush()
	}
	var b bytes.Buffer
	if err := json.Indent(&b, r.Data, "", "  "); err != nil {
		return fmt.Errorf("the server sent row %s/%s that is not valid JSON: %w", opts.Table, opts.ID, err)
	}
	b.WriteByte('\n')
	_, err = b.WriteTo(opts.IO.Out)
	return err
}

// RowDeleteOptions are the parsed arguments of "keyhold row delete".
type RowDeleteOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.EnvironmentClient, error)

	EnvID string
	Table string
	ID    string
}

func newCmdRowDelete(f *Factory, runF func(*RowDeleteOptions) error) *cobra.Command {
	opts := &RowDeleteOptions{IO: f.IO, Client: services(f)}
	return &cobra.Command{
		Use:   "delete <env> <table> <id>",
		Short: "Delete a row",
		Args:  exactArgs("env", "table", "id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx = cmd.Context()
			opts.EnvID, opts.Table, opts.ID = args[0], args[1], args[2]
			if runF != nil {
				return runF(opts)
			}
			return rowDeleteRun(opts)
		},
	}
}

func rowDeleteRun(opts *RowDeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteRow(opts.Ctx, opts.EnvID, opts.Table, opts.ID); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Deleted row %s/%s in %s\n", opts.Table, opts.ID, opts.EnvID)
	return nil
}
