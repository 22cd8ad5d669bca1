package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

// The enterprise policy commands ("keyhold policy create|show|list|update|
// delete") and the template deployment commands ("keyhold deployment
// create|show", deployment.go) use the http package's PolicyClient through
// the keyhold.PolicyService and keyhold.DeploymentService contracts, with
// tokens for the management audience.

// policyServices returns a function that connects with the saved login, as
// Factory.Client does, for the policy commands.
func policyServices(f *Factory) func() (keyhold.PolicyService, error) {
	return connect(f, func(c *khttp.Client) keyhold.PolicyService { return c.Policies() })
}

// newCmdPolicy is the policy command group with the resource commands;
// cli.go adds the customer-managed key ones (environments, key-versions).
func newCmdPolicy(f *Factory) *cobra.Command {
	cmd := newGroup("policy", "Manage enterprise policies and the environments linked to them")
	cmd.Long = `Manage enterprise policies (Microsoft.PowerPlatform/enterprisePolicies): a
policy of kind Encryption names a key in a key vault, and gets a managed
identity of its own, which the key vault admin then grants access to the key
("keyhold role assign --role 'Key Vault Crypto Service Encryption User'
--assignee <principalId> --scope <vault id>"). The platform admin, given
Reader on the policy, links environments to it ("keyhold env link").

The subscription must have registered Microsoft.PowerPlatform first
("keyhold provider register Microsoft.PowerPlatform").`
	cmd.AddCommand(
		newCmdPolicyCreate(f, nil),
		newCmdPolicyShow(f, nil),
		newCmdPolicyList(f, nil),
		newCmdPolicyUpdate(f, nil),
		newCmdPolicyDelete(f, nil),
	)
	return cmd
}

// PolicyTarget are the flags that name a policy: -g, -n and
// --subscription.
type PolicyTarget struct {
	Subscription  string
	ResourceGroup string
	Name          string
}

func (p *PolicyTarget) flags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&p.ResourceGroup, "resource-group", "g", "", "Resource group (`RG`)")
	cmd.Flags().StringVarP(&p.Name, "name", "n", "", "Policy `NAME`")
	subscriptionFlagOn(cmd, &p.Subscription)
}

// PolicyCreateOptions are the parsed arguments of "keyhold policy create".
type PolicyCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.PolicyService, error)
	Format Format
	// LoginSubscription reads the default subscription.
	LoginSubscription func() (string, error)

	PolicyTarget
	Location   string
	VaultID    string
	Key        string
	KeyVersion string
	Tags       []string
	// External names an external vault (issue 13) instead of VaultID.
	External keyhold.ExternalKeyVault
}

func newCmdPolicyCreate(f *Factory, runF func(*PolicyCreateOptions) error) *cobra.Command {
	opts := &PolicyCreateOptions{IO: f.IO, Client: policyServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "create -g RG -n NAME -l LOCATION (--vault-id ID | --vault-uri URI --customer-tenant T --customer-app APP) --key NAME [--key-version V]",
		Short: "Create an enterprise policy of kind Encryption, or update its key",
		Long: `Create an enterprise policy of kind Encryption that names a key, with a
system-assigned managed identity of its own; or, if the policy exists,
change its key and tags (its location can't change).

--vault-id is the key vault's resource id (keyhold keyvault show -n NAME -o id);
the vault needs purge protection, and the key must exist in it. Without
--key-version the policy follows the key's current version as it rotates.
LOCATION is one of the 17 Power Platform regions: ` + joinLocations() + `.

A key in a vault this cloud doesn't run (the customer's Azure Key Vault or
Keyhold) is named by --vault-uri (https://{vault}.vault.azure.net), with
the customer's directory (--customer-tenant) and the app whose federated
credential trusts this platform for the policy's identity (--customer-app),
and --authority-host if that directory is not Entra ID (docs/external-vault.md).

This is what the spec's JSON template deploys ("keyhold deployment create").`,
		Example: `  keyhold policy create -g contoso-rg -n contoso-cmk -l europe \
      --vault-id /subscriptions/$SUB/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/contoso-kv --key cmk`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			vault := "vault-id"
			if cmd.Flags().Changed("vault-uri") {
				if cmd.Flags().Changed("vault-id") {
					return usageErrorf("%q takes --vault-id (a vault of this cloud) or --vault-uri (an external vault), not both", cmd.CommandPath())
				}
				vault = "vault-uri"
				if err := requireFlags(cmd, "customer-tenant", "customer-app"); err != nil {
					return err
				}
			}
			if err := requireFlags(cmd, "resource-group", "name", "location", vault, "key"); err != nil {
				return err
			}
			if _, err := parseTags(opts.Tags); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return policyCreateRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	cmd.Flags().StringVarP(&opts.Location, "location", "l", "", "Power Platform region (`LOCATION`), e.g. europe")
	cmd.Flags().StringVar(&opts.VaultID, "vault-id", "", "Resource `ID` of the key vault")
	cmd.Flags().StringVar(&opts.External.URI, "vault-uri", "", "`URI` of an external key vault, https://{vault}.vault.azure.net")
	cmd.Flags().StringVar(&opts.External.TenantID, "customer-tenant", "", "the external vault's directory (tenant) `ID`")
	cmd.Flags().StringVar(&opts.External.ClientID, "customer-app", "", "application (client) `ID` of the customer's app with the federated credential")
	cmd.Flags().StringVar(&opts.External.AuthorityHost, "authority-host", "", "the customer's authority `URL` (default: Entra ID's)")
	cmd.Flags().StringVar(&opts.Key, "key", "", "`NAME` of the key in the vault")
	cmd.Flags().StringVar(&opts.KeyVersion, "key-version", "", "Key `VERSION` to pin (default: follow the current one)")
	cmd.Flags().StringArrayVar(&opts.Tags, "tag", nil, "Tag (`KEY=VALUE`), repeatable")
	return cmd
}

func joinLocations() string { return strings.Join(keyhold.Locations, ", ") }

func policyCreateRun(opts *PolicyCreateOptions) error {
	tags, err := parseTags(opts.Tags)
	if err != nil {
		return err
	}
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	spec := keyhold.PolicySpec{Location: opts.Location, Kind: keyhold.PolicyKindEncryption, IdentityType: keyhold.PolicyIdentitySystemAssigned,
		KeyVaultID: opts.VaultID, KeyName: opts.Key, KeyVersion: opts.KeyVersion, Tags: tags}
	if opts.External.URI != "" {
		x := opts.External
		spec.External = &x
	}
	p, created, err := c.Put(opts.Ctx, sub, opts.ResourceGroup, opts.Name, spec)
	if err != nil {
		return err
	}
	if opts.Format == FormatTable {
		verb := "Updated"
		if created {
			verb = "Created"
		}
		fmt.Fprintf(opts.IO.Out, "%s enterprise policy %s\n", verb, cell(p.Name))
	}
	return printPolicy(opts.IO.Out, opts.Format, p)
}

// printPolicy shows a policy: its ARM resource as JSON, its id, or a table.
func printPolicy(w io.Writer, format Format, p *keyhold.EnterprisePolicy) error {
	return printPolicyTable(w, format, p, false)
}

// printPolicyTable is printPolicy; with lastUnwrap, the table also says
// when the policy's identity last unwrapped with its key ("never" if it
// didn't): only a single policy's GET answers that (policy show).
func printPolicyTable(w io.Writer, format Format, p *keyhold.EnterprisePolicy, lastUnwrap bool) error {
	switch format {
	case FormatJSON:
		return printJSON(w, keyhold.ToPolicyResource(p))
	case FormatID:
		_, err := fmt.Fprintln(w, p.ID())
		return err
	}
	version := p.KeyVersion
	if version == "" {
		version = "current (follows rotation)"
	}
	tw := newTable(w)
	row(tw, "ID:", p.ID())
	row(tw, "Name:", p.Name)
	row(tw, "Location:", p.Location)
	row(tw, "Kind:", p.Kind)
	row(tw, "System ID:", p.SystemID)
	row(tw, "Principal ID:", p.PrincipalID)
	if x := p.External; x != nil {
		authority := x.AuthorityHost
		if authority == "" {
			authority = keyhold.DefaultAuthorityHost
		}
		row(tw, "Key vault:", x.URI+" (external)")
		row(tw, "Customer tenant:", x.TenantID)
		row(tw, "Customer app:", x.ClientID)
		row(tw, "Authority:", authority)
	} else {
		row(tw, "Key vault:", p.KeyVaultID+" (built-in)")
	}
	row(tw, "Key:", p.KeyName)
	row(tw, "Key version:", version)
	if lastUnwrap {
		last := "never"
		if p.LastUnwrap != nil {
			last = timestamp(*p.LastUnwrap)
		}
		row(tw, "Last successful unwrap:", last)
	}
	row(tw, "Encryption:", p.EncryptionState)
	row(tw, "Health:", string(p.HealthStatus))
	row(tw, "Tags:", tagList(p.Tags))
	return tw.Flush()
}

// PolicyShowOptions are the parsed arguments of "keyhold policy show" and
// "keyhold policy delete".
type PolicyShowOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.PolicyService, error)
	Format Format
	// LoginSubscription reads the default subscription.
	LoginSubscription func() (string, error)

	PolicyTarget
	Confirmed bool // delete's --yes
}

func newCmdPolicyShow(f *Factory, runF func(*PolicyShowOptions) error) *cobra.Command {
	opts := &PolicyShowOptions{IO: f.IO, Client: policyServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "show -g RG -n NAME",
		Short: "Show an enterprise policy",
		Long: `Show an enterprise policy: its systemId (what environments are linked by),
the principal id of its managed identity (what the key vault admin grants
access to the key), its key vault (built-in or external) and key, its health,
and when its identity last unwrapped with the key in that vault ("never" if it
hasn't; recorded at most once a minute). It needs Reader on the policy.`,
		Example: `  keyhold policy show -g contoso-rg -n contoso-cmk
  keyhold policy show -g contoso-rg -n contoso-cmk -o json | jq -r .properties.systemId`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "resource-group", "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return policyShowRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	return cmd
}

func policyShowRun(opts *PolicyShowOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := c.Get(opts.Ctx, sub, opts.ResourceGroup, opts.Name)
	if err != nil {
		return err
	}
	return printPolicyTable(opts.IO.Out, opts.Format, p, true)
}

// PolicyListOptions are the parsed arguments of "keyhold policy list".
type PolicyListOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.PolicyService, error)
	Format Format
	// Subscription is --subscription; LoginSubscription the default.
	Subscription      string
	LoginSubscription func() (string, error)

	ResourceGroup string // "" for the whole subscription
}

func newCmdPolicyList(f *Factory, runF func(*PolicyListOptions) error) *cobra.Command {
	opts := &PolicyListOptions{IO: f.IO, Client: policyServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:     "list [-g RG]",
		Aliases: []string{"ls"},
		Short:   "List the enterprise policies you may read",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if runF != nil {
				return runF(opts)
			}
			return policyListRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.ResourceGroup, "resource-group", "g", "", "Only the policies of resource group `RG`")
	subscriptionFlagOn(cmd, &opts.Subscription)
	return cmd
}

func policyListRun(opts *PolicyListOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var ps []*keyhold.EnterprisePolicy
	if opts.ResourceGroup != "" {
		ps, err = c.ListByResourceGroup(opts.Ctx, sub, opts.ResourceGroup)
	} else {
		ps, err = c.ListBySubscription(opts.Ctx, sub)
	}
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		out := make([]*keyhold.PolicyResource, 0, len(ps))
		for _, p := range ps {
			out = append(out, keyhold.ToPolicyResource(p))
		}
		return printJSON(opts.IO.Out, out)
	case FormatID:
		for _, p := range ps {
			fmt.Fprintln(opts.IO.Out, p.ID())
		}
		return nil
	}
	if len(ps) == 0 {
		fmt.Fprintln(opts.IO.Out, "No enterprise policies")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "NAME", "GROUP", "LOCATION", "KEY", "HEALTH", "SYSTEM ID")
	for _, p := range ps {
		row(tw, p.Name, p.ResourceGroup, p.Location, p.KeyName, string(p.HealthStatus), p.SystemID)
	}
	return tw.Flush()
}

// PolicyUpdateOptions are the parsed arguments of "keyhold policy update".
type PolicyUpdateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.PolicyService, error)
	Format Format
	// LoginSubscription reads the default subscription.
	LoginSubscription func() (string, error)

	PolicyTarget
	// The changes; nil means unchanged.
	VaultID    *string
	Key        *string
	KeyVersion *string
	Tags       []string
	ClearTags  bool
}

func newCmdPolicyUpdate(f *Factory, runF func(*PolicyUpdateOptions) error) *cobra.Command {
	opts := &PolicyUpdateOptions{IO: f.IO, Client: policyServices(f), LoginSubscription: loginSubscriptionID(f)}
	var vaultID, key, version string
	cmd := &cobra.Command{
		Use:   "update -g RG -n NAME [--vault-id ID] [--key NAME] [--key-version V] [--tag KEY=VALUE]...",
		Short: "Change an enterprise policy's key or tags",
		Long: `Change the key an enterprise policy names (its vault, name or version) or its
tags; nothing else of a policy can change. A new vault or key without
--key-version follows that key's current version; --key-version "" stops
pinning a version. --tag replaces all the tags; --clear-tags removes them.

Refused while environments are linked to the policy: unlink them first.`,
		Example: `  keyhold policy update -g contoso-rg -n contoso-cmk --key cmk-2025
  keyhold policy update -g contoso-rg -n contoso-cmk --tag owner=keys`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "resource-group", "name"); err != nil {
				return err
			}
			fl := cmd.Flags()
			if fl.Changed("vault-id") {
				opts.VaultID = &vaultID
			}
			if fl.Changed("key") {
				opts.Key = &key
			}
			if fl.Changed("key-version") {
				opts.KeyVersion = &version
			}
			if opts.ClearTags && len(opts.Tags) > 0 {
				return usageErrorf("give --tag or --clear-tags, not both")
			}
			if _, err := parseTags(opts.Tags); err != nil {
				return err
			}
			if opts.VaultID == nil && opts.Key == nil && opts.KeyVersion == nil && len(opts.Tags) == 0 && !opts.ClearTags {
				return usageErrorf("nothing to change: give --vault-id, --key, --key-version, --tag or --clear-tags")
			}
			if runF != nil {
				return runF(opts)
			}
			return policyUpdateRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	cmd.Flags().StringVar(&vaultID, "vault-id", "", "Resource `ID` of the new key vault")
	cmd.Flags().StringVar(&key, "key", "", "`NAME` of the new key")
	cmd.Flags().StringVar(&version, "key-version", "", "Key `VERSION` to pin (\"\": follow the current one)")
	cmd.Flags().StringArrayVar(&opts.Tags, "tag", nil, "Tag (`KEY=VALUE`), repeatable; replaces the tags")
	cmd.Flags().BoolVar(&opts.ClearTags, "clear-tags", false, "Remove all the tags")
	return cmd
}

func policyUpdateRun(opts *PolicyUpdateOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ch := keyhold.PolicyPatch{KeyVaultID: opts.VaultID, KeyName: opts.Key, KeyVersion: opts.KeyVersion}
	if len(opts.Tags) > 0 || opts.ClearTags {
		tags, err := parseTags(opts.Tags)
		if err != nil {
			return err
		}
		if tags == nil {
			tags = map[string]string{}
		}
		ch.Tags = &tags
	}
	p, err := c.Patch(opts.Ctx, sub, opts.ResourceGroup, opts.Name, ch)
	if err != nil {
		return err
	}
	if opts.Format == FormatTable {
		fmt.Fprintf(opts.IO.Out, "Updated enterprise policy %s\n", cell(p.Name))
	}
	return printPolicy(opts.IO.Out, opts.Format, p)
}

func newCmdPolicyDelete(f *Factory, runF func(*PolicyShowOptions) error) *cobra.Command {
	opts := &PolicyShowOptions{IO: f.IO, Client: policyServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "delete -g RG -n NAME --yes",
		Short: "Delete an enterprise policy and its managed identity",
		Long: `Delete an enterprise policy with its managed identity, that identity's role
assignments (its access to the key) and the role assignments on the policy.
It needs the delete right on the policy (the key vault administrator's).

Deleting a policy that environments are linked to revokes their key access,
as the spec lists it: every linked environment is Locked at once, its data
refused to everyone until the policy is redeployed with the same key and an
administrator re-enables it, and a Production environment left Locked is
deleted after the server's period (28 days by default). It can't be undone,
so it needs --yes; without it the command only warns, saying how many
environments would lock.`,
		Example: `  keyhold policy delete -g contoso-rg -n contoso-cmk           # warns, changes nothing
  keyhold policy delete -g contoso-rg -n contoso-cmk --yes`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if err := requireFlags(cmd, "resource-group", "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return policyDeleteRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm the deletion")
	return cmd
}

// policyDeleteRun warns on stderr how many environments the deletion
// locks, then deletes the policy if --yes confirms it, and refuses it as a
// usage error otherwise.
func policyDeleteRun(opts *PolicyShowOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	n, err := c.LinkedEnvironments(opts.Ctx, sub, opts.ResourceGroup, opts.Name)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeResourceNotFound:
		return err // nothing to delete, nor to confirm
	case err != nil && !opts.Confirmed:
		return usageErrorf("deleting enterprise policy %q deletes its managed identity for good and locks the environments linked to it, if any (%v): pass --yes to confirm",
			opts.Name, err)
	case n > 0:
		fmt.Fprintf(opts.IO.ErrOut, "Warning: deleting enterprise policy %s locks the %s linked to it: their data is refused to everyone until the policy is redeployed with the same key and an administrator re-enables them, and Production environments left Locked are deleted (after 28 days by default).\n",
			cell(opts.Name), plural(n, "environment", "environments"))
	}
	if !opts.Confirmed {
		what := "deletes its managed identity for good"
		if n > 0 {
			what += " and locks " + plural(n, "environment", "environments")
		}
		return usageErrorf("deleting enterprise policy %q %s: pass --yes to confirm", opts.Name, what)
	}
	if err := c.Delete(opts.Ctx, sub, opts.ResourceGroup, opts.Name); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Deleted enterprise policy %s\n", cell(opts.Name))
	return nil
}

// plural says n things, in the singular for one.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
