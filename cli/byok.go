package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// "keyhold byok key upload|generate|activate|list": the tenant's legacy
// BYOK keys (issue 14), kept in Keyhold's own key store. A platform
// administrator manages them.

func newCmdBYOK(f *Factory) *cobra.Command {
	cmd := newGroup("byok", "Manage the tenant's legacy bring-your-own-key (BYOK) encryption")
	key := newGroup("key", "Manage the tenant's BYOK keys")
	key.AddCommand(newCmdBYOKList(f, nil), newCmdBYOKUpload(f, nil), newCmdBYOKGenerate(f, nil), newCmdBYOKActivate(f, nil))
	cmd.AddCommand(key, newCmdBYOKKEK(f), newCmdBYOKApply(f, nil), newCmdBYOKLock(f, nil), newCmdBYOKUnlock(f, nil), newCmdBYOKRemove(f, nil))
	return cmd
}

func newCmdBYOKApply(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "apply"}
	return &cobra.Command{
		Use:   "apply <env>",
		Short: "Encrypt an environment under the tenant's Active BYOK key",
		Long: `Move an environment under the tenant's Active BYOK key: its environment key is
wrapped under the BYOK key, proven, and the platform key's copy deleted, in
one step; the environment stays Enabled and reads "CustomerViaMicrosoft".
The environment must be Enabled, under the Microsoft-managed key, with no
operation running.`,
		Example: `  keyhold byok apply $ENV`,
		Args:    exactArgs("env"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format, opts.ID = cmd.Context(), f.Format, args[0]
			return runBYOK(opts, runF)
		},
	}
}

func newCmdBYOKRemove(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "remove"}
	return &cobra.Command{
		Use:   "remove",
		Short: "Remove BYOK from the tenant after its last environment migrated",
		Long: `Remove BYOK from the tenant, once every BYOK environment has migrated to a
customer-managed key. The BYOK option disappears at once; the tenant's BYOK
keys are kept until 28 days after the last migration (so that backups from
before it can be restored), then deleted.`,
		Example: `  keyhold byok remove`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			return runBYOK(opts, runF)
		},
	}
}

func newCmdBYOKLock(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "lock"}
	return &cobra.Command{
		Use:   "lock",
		Short: "Lock the tenant: disable every environment under its BYOK key",
		Long: `Lock the tenant's BYOK key: every environment under it is disabled, its key
dropped from memory, and its data refused, until "keyhold byok unlock" is
given the same key again.`,
		Example: `  keyhold byok lock`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			return runBYOK(opts, runF)
		},
	}
}

func newCmdBYOKUnlock(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "unlock"}
	cmd := &cobra.Command{
		Use:   "unlock (--jwk FILE | --pfx FILE --password-stdin | --byok-file FILE.byok)",
		Short: "Unlock the tenant by supplying its Active BYOK key again",
		Long: `Unlock the tenant by supplying its Active BYOK key again, as a JWK or a PFX
or a key-transfer blob (as for "keyhold byok key upload"; a blob's key is
unwrapped in the token only to compare it). Only the same key unlocks; the
environments the lock disabled are enabled again.`,
		Example: `  echo "$PFX_PASSWORD" | keyhold byok unlock --pfx key.pfx --password-stdin`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := checkKeyFlags(opts); err != nil {
				return err
			}
			return runBYOK(opts, runF)
		},
	}
	keyFlags(cmd, opts)
	return cmd
}

// keyFlags adds the flags that give a key (upload, unlock).
func keyFlags(cmd *cobra.Command, opts *BYOKOptions) {
	cmd.Flags().StringVar(&opts.JWKFile, "jwk", "", "the RSA private key as a JSON web key (`FILE`, or - for stdin)")
	cmd.Flags().StringVar(&opts.PFXFile, "pfx", "", "the RSA private key and its certificate as a PKCS #12 `FILE`")
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the PFX's password from stdin")
	cmd.Flags().StringVar(&opts.BYOKFile, "byok-file", "", "a key-transfer blob (`FILE`.byok) wrapped to the tenant's KEK")
}

// checkKeyFlags refuses a combination of keyFlags that gives no key.
func checkKeyFlags(opts *BYOKOptions) error {
	given := 0
	for _, f := range []string{opts.JWKFile, opts.PFXFile, opts.BYOKFile} {
		if f != "" {
			given++
		}
	}
	switch {
	case given != 1:
		return usageErrorf("give the key with --jwk FILE or --pfx FILE --password-stdin, or a key-transfer blob with --byok-file FILE.byok")
	case opts.BYOKFile != "" && opts.PasswordStdin:
		return usageErrorf("--password-stdin is for a PFX: a transfer blob has no password")
	case opts.PFXFile != "" && !opts.PasswordStdin:
		return usageErrorf("a PFX needs its password: pipe it to stdin and add --password-stdin")
	case opts.JWKFile != "" && opts.PasswordStdin:
		return usageErrorf("--password-stdin is for a PFX: a JWK has no password")
	case opts.PFXFile == "-":
		return usageErrorf("--pfx needs a file name: stdin carries the password")
	}
	return nil
}

// byokServices connects for the BYOK commands.
func byokServices(f *Factory) func() (keyhold.BYOKService, error) {
	return connect(f, func(c *khttp.Client) keyhold.BYOKService { return c })
}

// BYOKOptions are the parsed arguments of "keyhold byok key …". Action is
// "list", "upload", "generate" or "activate".
type BYOKOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BYOKService, error)
	Format Format

	Action        string
	JWKFile       string // upload: a JWK file, or "-" for stdin
	PFXFile       string // upload: a PFX file
	PasswordStdin bool   // upload: read the PFX's password from stdin's first line
	BYOKFile      string // upload, unlock: a key-transfer blob (byok_kek.go)
	Size          int    // generate
	ID            string // activate
}

func newCmdBYOKList(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "list"}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the tenant's BYOK keys",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			return runBYOK(opts, runF)
		},
	}
}

func newCmdBYOKUpload(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "upload"}
	cmd := &cobra.Command{
		Use:   "upload (--jwk FILE | --pfx FILE --password-stdin | --byok-file FILE.byok)",
		Short: "Upload an RSA key as a BYOK key",
		Long: `Upload the tenant's own RSA private key (2048, 3072 or 4096 bits) as a BYOK
key. It is stored Installing, sealed under the server's master key; activate
it to encrypt the tenant's BYOK environments with it.

Give it as a JSON web key (--jwk FILE, or - for stdin: kty RSA with n, e, d,
p and q), or as a PKCS #12 file (--pfx FILE) whose password is the first
line of stdin (--password-stdin), so that it appears in no process list.
The PFX must be encrypted with PBE-SHA1-3DES: with OpenSSL 3, export it with
"openssl pkcs12 -export -legacy".

Or give it in the HSM key-transfer format (--byok-file FILE.byok), wrapped to
the tenant's key-exchange key ("keyhold byok kek create"): the server
unwraps it inside its PKCS#11 token, where the key stays, not extractable.`,
		Example: `  keyhold byok key upload --jwk key.jwk.json
  echo "$PFX_PASSWORD" | keyhold byok key upload --pfx key.pfx --password-stdin
  keyhold byok key upload --byok-file key.byok`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := checkKeyFlags(opts); err != nil {
				return err
			}
			return runBYOK(opts, runF)
		},
	}
	keyFlags(cmd, opts)
	return cmd
}

func newCmdBYOKGenerate(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "generate"}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Have Keyhold generate a BYOK key",
		Long: `Have Keyhold generate an RSA key as a BYOK key of the tenant. It is stored
Installing, sealed under the server's master key, and never leaves the
server; activate it to use it.`,
		Example: `  keyhold byok key generate --size 3072`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if opts.Size != 2048 && opts.Size != 3072 && opts.Size != 4096 {
				return usageErrorf("--size %d is not supported: use 2048, 3072 or 4096", opts.Size)
			}
			return runBYOK(opts, runF)
		},
	}
	cmd.Flags().IntVar(&opts.Size, "size", keyhold.BYOKDefaultKeySize, "the key's size in `BITS`")
	return cmd
}

func newCmdBYOKActivate(f *Factory, runF func(*BYOKOptions) error) *cobra.Command {
	opts := &BYOKOptions{IO: f.IO, Client: byokServices(f), Action: "activate"}
	return &cobra.Command{
		Use:   "activate <key-id>",
		Short: "Make a BYOK key the tenant's Active key",
		Long: `Make a BYOK key the tenant's Active key; the key Active before becomes
Available. A tenant may activate a key at most once every 24 hours. The
environments under the older keys then move to this key in the background;
the command prints the operation to follow (keyhold operation show <id>).`,
		Example: `  keyhold byok key activate 7d9c…`,
		Args:    exactArgs("key-id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Format, opts.ID = cmd.Context(), f.Format, args[0]
			return runBYOK(opts, runF)
		},
	}
}

func runBYOK(opts *BYOKOptions, runF func(*BYOKOptions) error) error {
	if runF != nil {
		return runF(opts)
	}
	return byokRun(opts)
}

func byokRun(opts *BYOKOptions) error {
	switch opts.Action {
	case "apply", "lock", "unlock":
		return byokTenantRun(opts)
	case "remove":
		c, err := opts.Client()
		if err != nil {
			return err
		}
		st, err := c.RemoveBYOK(opts.Ctx)
		if err != nil {
			return err
		}
		if opts.Format == FormatJSON {
			return printJSON(opts.IO.Out, st)
		}
		_, err = fmt.Fprintf(opts.IO.Out, "Removed BYOK from tenant %s; its BYOK keys are deleted at %s\n", st.TenantID, timestamp(st.ShredAfter))
		return err
	}
	var up keyhold.BYOKUpload
	if opts.Action == "upload" { // read the input before connecting, so a bad file costs no sign-in
		var err error
		if up, err = readBYOKUpload(opts); err != nil {
			return err
		}
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var k *keyhold.BYOKKey
	switch opts.Action {
	case "list":
		ks, err := c.ListBYOKKeys(opts.Ctx)
		if err != nil {
			return err
		}
		return printBYOKKeys(opts, ks)
	case "upload":
		k, err = c.UploadBYOKKey(opts.Ctx, up)
	case "generate":
		k, err = c.GenerateBYOKKey(opts.Ctx, opts.Size)
	case "activate":
		k, err = c.ActivateBYOKKey(opts.Ctx, opts.ID)
	}
	if err != nil {
		return err
	}
	if err := printBYOKKeys(opts, []*keyhold.BYOKKey{k}); err != nil || k.RewrapOperationID == "" || opts.Format == FormatJSON {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.ErrOut, "The environments under older keys move to this key in operation %s (keyhold operation wait %s)\n", k.RewrapOperationID, k.RewrapOperationID)
	return err
}

// byokTenantRun runs apply, lock and unlock.
func byokTenantRun(opts *BYOKOptions) error {
	var up keyhold.BYOKUpload
	if opts.Action == "unlock" {
		var err error
		if up, err = readBYOKUpload(opts); err != nil {
			return err
		}
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var ids []string
	switch opts.Action {
	case "apply":
		e, err := c.ApplyBYOK(opts.Ctx, opts.ID)
		if err != nil {
			return err
		}
		if opts.Format == FormatJSON {
			return printJSON(opts.IO.Out, e)
		}
		_, err = fmt.Fprintf(opts.IO.Out, "Environment %s is encrypted under the tenant's BYOK key (key managed by %s)\n", e.ID, e.KeyManagedBy)
		return err
	case "lock":
		ids, err = c.LockBYOKTenant(opts.Ctx)
	case "unlock":
		ids, err = c.UnlockBYOKTenant(opts.Ctx, up)
	}
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, map[string][]string{"environments": ids})
	case FormatID:
		for _, id := range ids {
			fmt.Fprintln(opts.IO.Out, id)
		}
		return nil
	}
	verb := map[string]string{"lock": "Locked the tenant's BYOK key; disabled", "unlock": "Unlocked the tenant's BYOK key; enabled"}[opts.Action]
	_, err = fmt.Fprintf(opts.IO.Out, "%s %d environments %s\n", verb, len(ids), strings.Join(ids, " "))
	return err
}

// readBYOKUpload reads the key file, and the PFX's password from stdin.
func readBYOKUpload(opts *BYOKOptions) (keyhold.BYOKUpload, error) {
	var up keyhold.BYOKUpload
	if opts.BYOKFile != "" {
		b, err := os.ReadFile(opts.BYOKFile)
		up.Transfer = b
		return up, err
	}
	if opts.PFXFile != "" {
		b, err := os.ReadFile(opts.PFXFile)
		if err != nil {
			return up, err
		}
		line, err := bufio.NewReader(opts.IO.In).ReadString('\n')
		if err != nil && err != io.EOF {
			return up, err
		}
		up.PFX, up.Password = b, strings.TrimRight(line, "\r\n")
		return up, nil
	}
	var b []byte
	var err error
	if opts.JWKFile == "-" {
		b, err = io.ReadAll(io.LimitReader(opts.IO.In, 64<<10))
	} else {
		b, err = os.ReadFile(opts.JWKFile)
	}
	if err != nil {
		return up, err
	}
	up.JWK, err = parseJWKFile(opts.JWKFile, b)
	return up, err
}

// parseJWKFile decodes an RSA private key in JWK form (RFC 7517/7518:
// base64url members). Its errors name the member, never its value.
func parseJWKFile(name string, b []byte) (*keyhold.JSONWebKey, error) {
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s is not a JSON web key: %v; give an RSA private key as JSON with kty, n, e, d, p and q", name, err)
	}
	kty, _ := j["kty"].(string)
	jwk := &keyhold.JSONWebKey{Kty: kty}
	for _, m := range []struct {
		name string
		out  *[]byte
	}{{"n", &jwk.N}, {"e", &jwk.E}, {"d", &jwk.D}, {"p", &jwk.P}, {"q", &jwk.Q}, {"dp", &jwk.DP}, {"dq", &jwk.DQ}, {"qi", &jwk.QI}} {
		v, ok := j[m.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: member %q is not a string: JWK members are base64url strings", name, m.name)
		}
		d, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			return nil, fmt.Errorf("%s: member %q is not base64url (RFC 4648, section 5)", name, m.name)
		}
		*m.out = d
	}
	return jwk, nil
}

func printBYOKKeys(opts *BYOKOptions, ks []*keyhold.BYOKKey) error {
	switch opts.Format {
	case FormatJSON:
		if opts.Action != "list" && len(ks) == 1 {
			return printJSON(opts.IO.Out, ks[0])
		}
		return printJSON(opts.IO.Out, ks)
	case FormatID:
		for _, k := range ks {
			fmt.Fprintln(opts.IO.Out, k.ID)
		}
		return nil
	}
	if len(ks) == 0 {
		_, err := fmt.Fprintln(opts.IO.Out, `The tenant has no BYOK key: upload one with "keyhold byok key upload" or generate one with "keyhold byok key generate"`)
		return err
	}
	tw := newTable(opts.IO.Out)
	row(tw, "ID", "STATE", "SOURCE", "SIZE", "THUMBPRINT", "CREATED", "ACTIVATED")
	for _, k := range ks {
		act := "-"
		if !k.ActivatedAt.IsZero() {
			act = timestamp(k.ActivatedAt)
		}
		row(tw, k.ID, string(k.State), string(k.Source), strconv.Itoa(k.Size), k.Thumbprint, timestamp(k.CreatedAt), act)
	}
	return tw.Flush()
}
