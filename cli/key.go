package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

func newCmdKey(f *Factory) *cobra.Command {
	cmd := newGroup("key", "Manage the keys of a key vault")
	cmd.Long = `Manage the keys of a key vault through its Azure Key Vault API, with the
official azkeys SDK client. Name the vault with --vault NAME (a vault of the
logged-in server) or --vault-uri URI.`
	cmd.AddCommand(
		newCmdKeyCreate(f, nil),
		newCmdKeyList(f, nil),
		newCmdKeyShow(f, nil),
		newCmdKeyVersions(f, nil),
		newCmdKeyRotate(f, nil),
		newCmdKeySetEnabled(f, nil, true),
		newCmdKeySetEnabled(f, nil, false),
		newCmdKeyDelete(f, nil),
		newCmdKeyRecover(f, nil),
		newCmdKeyPurge(f, nil),
		newCmdKeyRotationPolicy(f),
		newCmdKeyDownload(f, nil),
		newCmdKeyTransferBlob(f, nil),
		newCmdKeyImport(f, nil),
	)
	return cmd
}

// KeyTarget are the flags that name a key of a vault's data plane (or,
// without Name, the vault): --vault or --vault-uri, and -n.
type KeyTarget struct {
	VaultFlags
	Name string
}

func (k *KeyTarget) flags(cmd *cobra.Command, withName bool) {
	cmd.Flags().StringVar(&k.Vault, "vault", "", "Vault `NAME` on the logged-in server")
	cmd.Flags().StringVar(&k.VaultURI, "vault-uri", "", "Vault `URI` (instead of --vault)")
	if withName {
		cmd.Flags().StringVarP(&k.Name, "name", "n", "", "Key `NAME`")
	}
}

// check validates the flags that name the key.
func (k *KeyTarget) check(cmd *cobra.Command, withName bool) error {
	if withName {
		if err := requireFlags(cmd, "name"); err != nil {
			return err
		}
	}
	return k.VaultFlags.check()
}

// client returns the azkeys client of the vault.
func (k *KeyTarget) client(clients clientsFunc) (*azkeys.Client, error) {
	c, err := clients("")
	if err != nil {
		return nil, err
	}
	return c.keys(k.Vault, k.VaultURI)
}

// KeyCreateOptions are the parsed arguments of "keyhold key create".
type KeyCreateOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	Kty      string
	Size     int
	Ops      []string
	Disabled bool
}

// keyOps are the key operations, as azkeys spells them.
var keyOps = func() []string {
	var out []string
	for _, o := range azkeys.PossibleKeyOperationValues() {
		out = append(out, string(o))
	}
	return out
}()

func newCmdKeyCreate(f *Factory, runF func(*KeyCreateOptions) error) *cobra.Command {
	opts := &KeyCreateOptions{IO: f.IO, Clients: f.keyVaultClients}
	var ops string
	cmd := &cobra.Command{
		Use:   "create --vault VAULT -n NAME [--kty RSA|RSA-HSM] [--size 2048|3072|4096]",
		Short: "Create a key, or a new version of one",
		Long: `Create an RSA key in the vault, or a new current version of an existing key.
RSA-HSM keys are generated inside the server's PKCS#11 token and never leave
it. A customer-managed key needs the wrapKey and unwrapKey operations (the
default operations include them).`,
		Example: `  keyhold key create --vault contoso-kv -n cmk --size 3072 --ops wrapKey,unwrapKey`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			kty, err := oneOfFlag("kty", opts.Kty, []string{string(azkeys.KeyTypeRSA), string(azkeys.KeyTypeRSAHSM)})
			if err != nil {
				return err
			}
			opts.Kty = kty
			if !slices.Contains([]int{2048, 3072, 4096}, opts.Size) {
				return usageErrorf("--size %d is not valid: use 2048, 3072 or 4096", opts.Size)
			}
			opts.Ops = nil
			for _, o := range splitList(ops) {
				i := slices.IndexFunc(keyOps, func(k string) bool { return strings.EqualFold(k, o) })
				if i < 0 {
					return usageErrorf("--ops: %q is not a key operation: use %s", o, strings.Join(keyOps, ", "))
				}
				opts.Ops = append(opts.Ops, keyOps[i])
			}
			if runF != nil {
				return runF(opts)
			}
			return keyCreateRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	cmd.Flags().StringVar(&opts.Kty, "kty", "RSA", "Key `TYPE`: RSA or RSA-HSM")
	cmd.Flags().IntVar(&opts.Size, "size", 2048, "Key size in `BITS`: 2048, 3072 or 4096")
	cmd.Flags().StringVar(&ops, "ops", "", "Comma-separated key `OPERATIONS` (default: encrypt, decrypt, sign, verify, wrapKey, unwrapKey)")
	cmd.Flags().BoolVar(&opts.Disabled, "disabled", false, "Create the version disabled")
	return cmd
}

func keyCreateRun(opts *KeyCreateOptions) error {
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	p := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyType(opts.Kty)), KeySize: to.Ptr(int32(opts.Size))}
	for _, o := range opts.Ops {
		p.KeyOps = append(p.KeyOps, to.Ptr(azkeys.KeyOperation(o)))
	}
	if opts.Disabled {
		p.KeyAttributes = &azkeys.KeyAttributes{Enabled: to.Ptr(false)}
	}
	res, err := kc.CreateKey(opts.Ctx, opts.Name, p, nil)
	if err != nil {
		return sdkError(err)
	}
	return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
}

// KeyListOptions are the parsed arguments of "keyhold key list".
type KeyListOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	Deleted bool
}

func newCmdKeyList(f *Factory, runF func(*KeyListOptions) error) *cobra.Command {
	opts := &KeyListOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:     "list --vault VAULT [--deleted]",
		Aliases: []string{"ls"},
		Short:   "List the keys of a vault",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := opts.KeyTarget.check(cmd, false); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyListRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, false)
	cmd.Flags().BoolVar(&opts.Deleted, "deleted", false, "List the deleted (recoverable) keys instead")
	return cmd
}

func keyListRun(opts *KeyListOptions) error {
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	if opts.Deleted {
		keys := []*azkeys.DeletedKeyProperties{}
		for pg := kc.NewListDeletedKeyPropertiesPager(nil); pg.More(); {
			page, err := pg.NextPage(opts.Ctx)
			if err != nil {
				return sdkError(err)
			}
			keys = append(keys, page.Value...)
		}
		switch opts.Format {
		case FormatJSON:
			return printJSON(opts.IO.Out, keys)
		case FormatID:
			for _, k := range keys {
				fmt.Fprintln(opts.IO.Out, deref(k.KID))
			}
			return nil
		}
		if len(keys) == 0 {
			fmt.Fprintln(opts.IO.Out, "No deleted keys")
			return nil
		}
		tw := newTable(opts.IO.Out)
		row(tw, "KID", "DELETED", "PURGED AT")
		for _, k := range keys {
			row(tw, deref(k.KID), timePtr(k.DeletedDate), timePtr(k.ScheduledPurgeDate))
		}
		return tw.Flush()
	}
	keys := []*azkeys.KeyProperties{}
	for pg := kc.NewListKeyPropertiesPager(nil); pg.More(); {
		page, err := pg.NextPage(opts.Ctx)
		if err != nil {
			return sdkError(err)
		}
		keys = append(keys, page.Value...)
	}
	return printKeyProperties(opts.IO.Out, opts.Format, keys, "No keys")
}

// KeyShowOptions are the parsed arguments of "keyhold key show".
type KeyShowOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	Version string
}

func newCmdKeyShow(f *Factory, runF func(*KeyShowOptions) error) *cobra.Command {
	opts := &KeyShowOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "show --vault VAULT -n NAME [--version V]",
		Short: "Show a key version (the current one by default)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyShowRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	cmd.Flags().StringVar(&opts.Version, "version", "", "Key `VERSION` (default: the current one)")
	return cmd
}

func keyShowRun(opts *KeyShowOptions) error {
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	res, err := kc.GetKey(opts.Ctx, opts.Name, opts.Version, nil)
	if err != nil {
		return sdkError(err)
	}
	return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
}

// KeyVersionsOptions are the parsed arguments of "keyhold key versions".
type KeyVersionsOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
}

func newCmdKeyVersions(f *Factory, runF func(*KeyVersionsOptions) error) *cobra.Command {
	opts := &KeyVersionsOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "versions --vault VAULT -n NAME",
		Short: "List the versions of a key",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVersionsRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	return cmd
}

func keyVersionsRun(opts *KeyVersionsOptions) error {
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	keys := []*azkeys.KeyProperties{}
	for pg := kc.NewListKeyPropertiesVersionsPager(opts.Name, nil); pg.More(); {
		page, err := pg.NextPage(opts.Ctx)
		if err != nil {
			return sdkError(err)
		}
		keys = append(keys, page.Value...)
	}
	return printKeyProperties(opts.IO.Out, opts.Format, keys, "No versions")
}

// KeyNameOptions are the parsed arguments of the key commands that take
// only a key: rotate, delete, recover, purge, enable and disable.
type KeyNameOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	Version   string // enable and disable
	Confirmed bool   // purge
}

// newKeyNameCmd builds a command over KeyNameOptions.
func newKeyNameCmd(f *Factory, cmd *cobra.Command, runF func(*KeyNameOptions) error, run func(*KeyNameOptions) error) (*cobra.Command, *KeyNameOptions) {
	opts := &KeyNameOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd.Args = exactArgs()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts.Ctx, opts.Format = cmd.Context(), f.Format
		if err := opts.KeyTarget.check(cmd, true); err != nil {
			return err
		}
		if cmd.Flags().Lookup("yes") != nil && !opts.Confirmed {
			return usageErrorf("purging key %q destroys it and all its versions for good: pass --yes to confirm", opts.Name)
		}
		if runF != nil {
			return runF(opts)
		}
		return run(opts)
	}
	opts.KeyTarget.flags(cmd, true)
	return cmd, opts
}

func newCmdKeyRotate(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
	cmd, _ := newKeyNameCmd(f, &cobra.Command{
		Use:   "rotate --vault VAULT -n NAME",
		Short: "Give a key a new current version",
		Long: `Rotate a key: create a new current version with the same type, size and
operations. Older versions stay and still unwrap what they wrapped.`,
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		res, err := kc.RotateKey(opts.Ctx, opts.Name, nil)
		if err != nil {
			return sdkError(err)
		}
		return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
	})
	return cmd
}

// newCmdKeySetEnabled is "keyhold key enable" or "keyhold key disable".
func newCmdKeySetEnabled(f *Factory, runF func(*KeyNameOptions) error, enable bool) *cobra.Command {
	use, short := "enable", "Enable a key version (the current one by default)"
	if !enable {
		use, short = "disable", "Disable a key version (the current one by default)"
	}
	cmd, opts := newKeyNameCmd(f, &cobra.Command{
		Use:   use + " --vault VAULT -n NAME [--version V]",
		Short: short,
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		res, err := kc.UpdateKey(opts.Ctx, opts.Name, opts.Version,
			azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(enable)}}, nil)
		if err != nil {
			return sdkError(err)
		}
		return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
	})
	if !enable {
		cmd.Long = `Disable a key version: wrapKey and unwrapKey with it are refused (Forbidden,
KeyDisabled), so every environment whose key it wraps is locked until it is
enabled again.`
	}
	cmd.Flags().StringVar(&opts.Version, "version", "", "Key `VERSION` (default: the current one)")
	return cmd
}

func newCmdKeyDelete(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
	cmd, _ := newKeyNameCmd(f, &cobra.Command{
		Use:   "delete --vault VAULT -n NAME",
		Short: "Delete a key (recoverable until the vault's retention passes)",
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		res, err := kc.DeleteKey(opts.Ctx, opts.Name, nil)
		if err != nil {
			return sdkError(err)
		}
		switch opts.Format {
		case FormatJSON:
			return printJSON(opts.IO.Out, res.DeletedKey)
		case FormatID:
			if res.Key != nil {
				fmt.Fprintln(opts.IO.Out, deref(res.Key.KID))
			}
			return nil
		}
		fmt.Fprintf(opts.IO.Out, "Deleted key %s; recoverable until %s (keyhold key recover)\n", opts.Name, timePtr(res.ScheduledPurgeDate))
		return nil
	})
	return cmd
}

func newCmdKeyRecover(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
	cmd, _ := newKeyNameCmd(f, &cobra.Command{
		Use:   "recover --vault VAULT -n NAME",
		Short: "Recover a deleted key, with all its versions",
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		res, err := kc.RecoverDeletedKey(opts.Ctx, opts.Name, nil)
		if err != nil {
			return sdkError(err)
		}
		return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
	})
	return cmd
}

func newCmdKeyPurge(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
	cmd, opts := newKeyNameCmd(f, &cobra.Command{
		Use:   "purge --vault VAULT -n NAME --yes",
		Short: "Destroy a deleted key for good",
		Long: `Purge a deleted key: it and all its versions are destroyed, and whatever they
wrapped can never be unwrapped again. Refused under the vault's purge
protection until the retention has passed. It needs --yes.`,
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		if _, err := kc.PurgeDeletedKey(opts.Ctx, opts.Name, nil); err != nil {
			return sdkError(err)
		}
		fmt.Fprintf(opts.IO.Out, "Purged key %s\n", opts.Name)
		return nil
	})
	cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm the purge")
	return cmd
}

func newCmdKeyRotationPolicy(f *Factory) *cobra.Command {
	cmd := newGroup("rotation-policy", "Show or set a key's rotation policy")
	cmd.AddCommand(newCmdKeyRotationPolicyShow(f, nil), newCmdKeyRotationPolicySet(f, nil))
	return cmd
}

func newCmdKeyRotationPolicyShow(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
	cmd, _ := newKeyNameCmd(f, &cobra.Command{
		Use:   "show --vault VAULT -n NAME",
		Short: "Show a key's rotation policy",
	}, runF, func(opts *KeyNameOptions) error {
		kc, err := opts.KeyTarget.client(opts.Clients)
		if err != nil {
			return err
		}
		res, err := kc.GetKeyRotationPolicy(opts.Ctx, opts.Name, nil)
		if err != nil {
			return sdkError(err)
		}
		return printRotationPolicy(opts.IO.Out, opts.Format, &res.KeyRotationPolicy)
	})
	return cmd
}

// KeyRotationPolicySetOptions are the parsed arguments of "keyhold key
// rotation-policy set".
type KeyRotationPolicySetOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	File string // "-": stdin
}

func newCmdKeyRotationPolicySet(f *Factory, runF func(*KeyRotationPolicySetOptions) error) *cobra.Command {
	opts := &KeyRotationPolicySetOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "set --vault VAULT -n NAME --file POLICY.json",
		Short: "Set a key's rotation policy from a JSON file",
		Long: `Set a key's rotation policy from a file holding it in Key Vault's JSON form
("-" reads stdin). Durations are ISO 8601: rotation at least 7 days after
creation (or before expiry), an expiry of at least 28 days.`,
		Example: `  cat > policy.json <<'EOF'
  {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},
                      {"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Notify"}}],
   "attributes":{"expiryTime":"P1Y"}}
  EOF
  keyhold key rotation-policy set --vault contoso-kv -n cmk --file policy.json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "file"); err != nil {
				return err
			}
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyRotationPolicySetRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	cmd.Flags().StringVar(&opts.File, "file", "", "JSON `FILE` of the policy (- for stdin)")
	return cmd
}

func keyRotationPolicySetRun(opts *KeyRotationPolicySetOptions) error {
	var (
		b   []byte
		err error
	)
	if opts.File == "-" {
		b, err = io.ReadAll(io.LimitReader(opts.IO.In, 1<<20))
	} else {
		b, err = os.ReadFile(opts.File)
	}
	if err != nil {
		return fmt.Errorf("reading the rotation policy: %w", err)
	}
	var p azkeys.KeyRotationPolicy
	if err := p.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("the rotation policy in %s is not valid JSON: %v", opts.File, err)
	}
	// The SDK drops fields it does not know, and the server would never
	// see a misspelt one: the policy would be set without it.
	if err := khttp.CheckRotationPolicyFields(b); err != nil {
		return fmt.Errorf("the rotation policy in %s: %s", opts.File, keyhold.ErrorMessage(err))
	}
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	res, err := kc.UpdateKeyRotationPolicy(opts.Ctx, opts.Name, p, nil)
	if err != nil {
		return sdkError(err)
	}
	return printRotationPolicy(opts.IO.Out, opts.Format, &res.KeyRotationPolicy)
}

// printKey prints a key version: its Key Vault JSON with -o json, its
// kid with -o id.
func printKey(w io.Writer, format Format, k *azkeys.KeyBundle) error {
	switch format {
	case FormatJSON:
		return printJSON(w, k)
	case FormatID:
		if k.Key != nil {
			_, err := fmt.Fprintln(w, deref(k.Key.KID))
			return err
		}
		return nil
	}
	tw := newTable(w)
	var kid, kty, ops, size string
	if k.Key != nil {
		kid, kty = deref(k.Key.KID), deref(k.Key.Kty)
		for _, o := range k.Key.KeyOps {
			ops += string(*o) + ","
		}
		size = fmt.Sprintf("%d bits", len(k.Key.N)*8)
	}
	a := k.Attributes
	if a == nil {
		a = &azkeys.KeyAttributes{}
	}
	for _, f := range []struct{ k, v string }{
		{"KID:", kid},
		{"Type:", kty},
		{"Size:", size},
		{"Operations:", strings.TrimSuffix(ops, ",")},
		{"Enabled:", yesNo(a.Enabled != nil && *a.Enabled)},
		{"Not before:", timePtr(a.NotBefore)},
		{"Expires:", timePtr(a.Expires)},
		{"Created:", timePtr(a.Created)},
		{"Updated:", timePtr(a.Updated)},
		{"Recovery level:", deref(a.RecoveryLevel)},
	} {
		row(tw, f.k, f.v)
	}
	return tw.Flush()
}

func printKeyProperties(w io.Writer, format Format, keys []*azkeys.KeyProperties, none string) error {
	switch format {
	case FormatJSON:
		return printJSON(w, keys)
	case FormatID:
		for _, k := range keys {
			fmt.Fprintln(w, deref(k.KID))
		}
		return nil
	}
	if len(keys) == 0 {
		fmt.Fprintln(w, none)
		return nil
	}
	tw := newTable(w)
	row(tw, "KID", "ENABLED", "CREATED", "EXPIRES")
	for _, k := range keys {
		a := k.Attributes
		if a == nil {
			a = &azkeys.KeyAttributes{}
		}
		row(tw, deref(k.KID), yesNo(a.Enabled != nil && *a.Enabled), timePtr(a.Created), timePtr(a.Expires))
	}
	return tw.Flush()
}

func printRotationPolicy(w io.Writer, format Format, p *azkeys.KeyRotationPolicy) error {
	switch format {
	case FormatJSON:
		return printJSON(w, p)
	case FormatID:
		_, err := fmt.Fprintln(w, deref(p.ID))
		return err
	}
	tw := newTable(w)
	expiry := "-"
	if p.Attributes != nil && p.Attributes.ExpiryTime != nil {
		expiry = *p.Attributes.ExpiryTime
	}
	row(tw, "Expiry:", expiry)
	for _, a := range p.LifetimeActions {
		var action, trigger string
		if a.Action != nil {
			action = deref(a.Action.Type)
		}
		if t := a.Trigger; t != nil {
			if t.TimeAfterCreate != nil {
				trigger = *t.TimeAfterCreate + " after creation"
			} else if t.TimeBeforeExpiry != nil {
				trigger = *t.TimeBeforeExpiry + " before expiry"
			}
		}
		row(tw, action+":", trigger)
	}
	return tw.Flush()
}

// timePtr renders an optional time for a table.
func timePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return timestamp(*t)
}
