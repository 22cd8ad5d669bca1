package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

func newCmdKeyVault(f *Factory) *cobra.Command {
	cmd := newGroup("keyvault", "Manage key vaults (Microsoft.KeyVault/vaults)")
	cmd.Long = `Manage key vaults through the server's resource manager, with the official
armkeyvault SDK client. The subscription is the login's (from its bootstrap
file) unless --subscription names another.`
	cmd.AddCommand(
		newCmdKeyVaultCreate(f, nil),
		newCmdKeyVaultShow(f, nil),
		newCmdKeyVaultList(f, nil),
		newCmdKeyVaultDelete(f, nil),
		newCmdKeyVaultRecover(f, nil),
		newCmdKeyVaultPurge(f, nil),
		newCmdKeyVaultSetPolicy(f, nil),
	)
	return cmd
}

// VaultTarget are the flags that name a vault resource: -n, -g and
// --subscription.
type VaultTarget struct {
	Subscription  string
	Name          string
	ResourceGroup string // "" where the command may look it up
}

func (v *VaultTarget) flags(cmd *cobra.Command, group string) {
	cmd.Flags().StringVarP(&v.Name, "name", "n", "", "Vault `NAME`")
	cmd.Flags().StringVarP(&v.ResourceGroup, "resource-group", "g", "", group)
	cmd.Flags().StringVar(&v.Subscription, "subscription", "", "Subscription `ID` (default: the login's)")
}

const groupLookedUp = "Resource `GROUP` (default: found by the vault's name)"

// Allowed values of the network flags, as Azure spells them.
var (
	publicAccessValues  = []string{keyhold.PublicAccessEnabled, keyhold.PublicAccessDisable}
	bypassValues        = []string{keyhold.BypassAzureServices, keyhold.BypassNone}
	defaultActionValues = []string{keyhold.NetworkAllow, keyhold.NetworkDeny}
	skuValues           = []string{"standard", "premium"}
)

// oneOfFlag returns the allowed value v names (in any case), or a usage
// error naming the flag and the values.
func oneOfFlag(flag, v string, allowed []string) (string, error) {
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, nil
		}
	}
	return "", usageErrorf("--%s %q is not valid: use %s", flag, v, strings.Join(allowed, " or "))
}

// KeyVaultCreateOptions are the parsed arguments of "keyhold keyvault create".
type KeyVaultCreateOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	VaultTarget
	Location            string
	SKU                 string
	RetentionDays       int
	PurgeProtection     bool
	AccessPolicies      bool // the access-policy model; false: RBAC
	PublicNetworkAccess string
	Bypass              string
	DefaultAction       string
	IPRules             []string
	// Lookup resolves the new vault's host name, to tell whether to print
	// a hosts-file line; nil: net.DefaultResolver's.
	Lookup func(ctx context.Context, host string) ([]string, error)
}

func newCmdKeyVaultCreate(f *Factory, runF func(*KeyVaultCreateOptions) error) *cobra.Command {
	opts := &KeyVaultCreateOptions{IO: f.IO, Clients: f.keyVaultClients}
	var rbac bool
	cmd := &cobra.Command{
		Use:   "create -n NAME -g GROUP -l LOCATION",
		Short: "Create a key vault",
		Long: `Create a key vault, with soft delete (always on) and, if asked, purge
protection, which can never be turned off again.

The permission model is RBAC (--rbac, the default): grant data access with
role assignments such as "Key Vault Crypto Officer". With --access-policies
the vault uses access policies instead, and the creator gets one with every
key permission.

Network rules: --default-action Deny admits only --ip-rule addresses and,
with --bypass AzureServices (the default), trusted platform services such as
an enterprise policy's identity.`,
		Example: `  keyhold keyvault create -n contoso-kv -g keys -l westeurope --enable-purge-protection
  keyhold keyvault create -n contoso-kv -g keys -l westeurope --access-policies \
      --default-action Deny --ip-rule 203.0.113.0/24`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name", "resource-group", "location"); err != nil {
				return err
			}
			if rbac && opts.AccessPolicies {
				return usageErrorf("give --rbac or --access-policies, not both")
			}
			if cmd.Flags().Changed("retention-days") && (opts.RetentionDays < keyhold.MinSoftDeleteRetentionDays || opts.RetentionDays > keyhold.MaxSoftDeleteRetentionDays) {
				return usageErrorf("--retention-days %d is not valid: use %d to %d", opts.RetentionDays, keyhold.MinSoftDeleteRetentionDays, keyhold.MaxSoftDeleteRetentionDays)
			}
			var err error
			for _, e := range []struct {
				flag    string
				v       *string
				allowed []string
			}{
				{"sku", &opts.SKU, skuValues},
				{"public-network-access", &opts.PublicNetworkAccess, publicAccessValues},
				{"bypass", &opts.Bypass, bypassValues},
				{"default-action", &opts.DefaultAction, defaultActionValues},
			} {
				if *e.v, err = oneOfFlag(e.flag, *e.v, e.allowed); err != nil {
					return err
				}
			}
			for _, r := range opts.IPRules {
				if _, err := netip.ParsePrefix(r); err != nil {
					if _, err := netip.ParseAddr(r); err != nil {
						return usageErrorf("--ip-rule %q is not an IP address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24)", r)
					}
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultCreateRun(opts)
		},
	}
	opts.VaultTarget.flags(cmd, "Resource `GROUP`")
	fl := cmd.Flags()
	fl.StringVarP(&opts.Location, "location", "l", "", "`LOCATION`, e.g. westeurope")
	fl.StringVar(&opts.SKU, "sku", "standard", "`SKU`: standard or premium")
	fl.IntVar(&opts.RetentionDays, "retention-days", keyhold.DefaultSoftDeleteRetentionDays, "How many `DAYS` a deleted vault or key stays recoverable (7 to 90)")
	fl.BoolVar(&opts.PurgeProtection, "enable-purge-protection", false, "Refuse purges until the retention has passed (irreversible)")
	fl.BoolVar(&rbac, "rbac", false, "Authorize data access with role assignments (the default)")
	fl.BoolVar(&opts.AccessPolicies, "access-policies", false, "Authorize data access with access policies")
	fl.StringVar(&opts.PublicNetworkAccess, "public-network-access", keyhold.PublicAccessEnabled, "`Enabled` or Disabled")
	fl.StringVar(&opts.Bypass, "bypass", keyhold.BypassAzureServices, "Let trusted services past the firewall: `AzureServices` or None")
	fl.StringVar(&opts.DefaultAction, "default-action", keyhold.NetworkAllow, "Firewall default: `Allow` or Deny")
	fl.StringArrayVar(&opts.IPRules, "ip-rule", nil, "Allowed client `ADDRESS` or CIDR range (repeatable)")
	return cmd
}

func keyVaultCreateRun(opts *KeyVaultCreateOptions) error {
	c, err := opts.Clients(opts.Subscription)
	if err != nil {
		return err
	}
	vc, err := c.vaults()
	if err != nil {
		return err
	}
	p := &armkeyvault.VaultProperties{
		TenantID:                  to.Ptr(c.tenantID),
		SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUName(opts.SKU))},
		EnableSoftDelete:          to.Ptr(true),
		SoftDeleteRetentionInDays: to.Ptr(int32(opts.RetentionDays)),
		EnableRbacAuthorization:   to.Ptr(!opts.AccessPolicies),
		PublicNetworkAccess:       to.Ptr(opts.PublicNetworkAccess),
		NetworkACLs: &armkeyvault.NetworkRuleSet{
			Bypass:        to.Ptr(armkeyvault.NetworkRuleBypassOptions(opts.Bypass)),
			DefaultAction: to.Ptr(armkeyvault.NetworkRuleAction(opts.DefaultAction)),
			IPRules:       []*armkeyvault.IPRule{},
		},
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{},
	}
	if opts.PurgeProtection {
		p.EnablePurgeProtection = to.Ptr(true)
	}
	for _, r := range opts.IPRules {
		p.NetworkACLs.IPRules = append(p.NetworkACLs.IPRules, &armkeyvault.IPRule{Value: to.Ptr(r)})
	}
	if opts.AccessPolicies {
		oid, err := c.callerObjectID(opts.Ctx)
		if err != nil {
			return err
		}
		all := []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}
		p.AccessPolicies = append(p.AccessPolicies, &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(c.tenantID), ObjectID: to.Ptr(oid),
			Permissions: &armkeyvault.Permissions{Keys: all}})
	}
	poller, err := vc.BeginCreateOrUpdate(opts.Ctx, opts.ResourceGroup, opts.Name,
		armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(opts.Location), Properties: p}, nil)
	if err != nil {
		return sdkError(err)
	}
	res, err := poller.PollUntilDone(opts.Ctx, nil)
	if err != nil {
		return sdkError(err)
	}
	if err := printVault(opts.IO.Out, opts.Format, &res.Vault); err != nil {
		return err
	}
	if res.Properties != nil {
		hostsHint(opts.Ctx, opts.IO.ErrOut, opts.Lookup, c.server, deref(res.Properties.VaultURI))
	}
	return nil
}

// hostsHint prints, to w, the hosts-file line that makes a vault's host
// name resolve, when it doesn't resolve here (names under .localhost
// don't, for Go's and Node's resolvers): the keyhold CLI reaches the
// vault without it (its dialer maps the vault domain to the server), but
// other clients need it, or a dialer of their own, or a DNS record (see
// docs/operations.md). lookup nil is net.DefaultResolver's, given a
// couple of seconds.
func hostsHint(ctx context.Context, w io.Writer, lookup func(context.Context, string) ([]string, error), server, vaultURI string) {
	u, err := url.Parse(vaultURI)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return
	}
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	if ctx == nil {
		ctx = context.Background()
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if addrs, err := lookup(lctx, u.Hostname()); err == nil && len(addrs) > 0 {
		return
	}
	ip := "127.0.0.1"
	if s, err := url.Parse(server); err == nil {
		if a := net.ParseIP(s.Hostname()); a != nil {
			ip = a.String()
		} else if addrs, err := lookup(lctx, s.Hostname()); err == nil && len(addrs) > 0 {
			ip = addrs[0]
		}
	}
	fmt.Fprintf(w, "%s does not resolve on this machine. keyhold reaches it as it is; for other clients add this line to /etc/hosts (or see docs/operations.md, \"Vault host names\"):\n%s %s\n",
		u.Hostname(), ip, u.Hostname())
}

// KeyVaultShowOptions are the parsed arguments of "keyhold keyvault show".
type KeyVaultShowOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	VaultTarget
}

func newCmdKeyVaultShow(f *Factory, runF func(*KeyVaultShowOptions) error) *cobra.Command {
	opts := &KeyVaultShowOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "show -n NAME [-g GROUP]",
		Short: "Show a key vault",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultShowRun(opts)
		},
	}
	opts.VaultTarget.flags(cmd, groupLookedUp)
	return cmd
}

func keyVaultShowRun(opts *KeyVaultShowOptions) error {
	vc, rg, err := opts.VaultTarget.resolve(opts.Ctx, opts.Clients)
	if err != nil {
		return err
	}
	res, err := vc.Get(opts.Ctx, rg, opts.Name, nil)
	if err != nil {
		return sdkError(err)
	}
	return printVault(opts.IO.Out, opts.Format, &res.Vault)
}

// resolve returns the vaults client and the vault's resource group: -g,
// or the group of the subscription's vault of that name.
func (v *VaultTarget) resolve(ctx context.Context, clients clientsFunc) (*armkeyvault.VaultsClient, string, error) {
	c, err := clients(v.Subscription)
	if err != nil {
		return nil, "", err
	}
	vc, err := c.vaults()
	if err != nil {
		return nil, "", err
	}
	if v.ResourceGroup != "" {
		return vc, v.ResourceGroup, nil
	}
	for pg := vc.NewListBySubscriptionPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, "", sdkError(err)
		}
		for _, vault := range page.Value {
			if vault.Name != nil && strings.EqualFold(*vault.Name, v.Name) && vault.ID != nil {
				if rg := groupOf(*vault.ID); rg != "" {
					return vc, rg, nil
				}
			}
		}
	}
	return nil, "", keyhold.Errorf(keyhold.CodeResourceNotFound,
		"no vault called %q in subscription %s: check the name (keyhold keyvault list), or pass -g GROUP", v.Name, c.subscription)
}

// groupOf returns the resource group of an ARM resource id.
func groupOf(id string) string {
	segs := strings.Split(id, "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// KeyVaultListOptions are the parsed arguments of "keyhold keyvault list".
type KeyVaultListOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	Subscription  string
	ResourceGroup string
	Deleted       bool
}

func newCmdKeyVaultList(f *Factory, runF func(*KeyVaultListOptions) error) *cobra.Command {
	opts := &KeyVaultListOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:     "list [-g GROUP] [--deleted]",
		Aliases: []string{"ls"},
		Short:   "List key vaults",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if opts.Deleted && opts.ResourceGroup != "" {
				return usageErrorf("deleted vaults belong to the subscription, not a group: drop -g with --deleted")
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultListRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.ResourceGroup, "resource-group", "g", "", "Only the vaults of resource `GROUP`")
	cmd.Flags().BoolVar(&opts.Deleted, "deleted", false, "List the deleted (recoverable) vaults instead")
	cmd.Flags().StringVar(&opts.Subscription, "subscription", "", "Subscription `ID` (default: the login's)")
	return cmd
}

func keyVaultListRun(opts *KeyVaultListOptions) error {
	c, err := opts.Clients(opts.Subscription)
	if err != nil {
		return err
	}
	vc, err := c.vaults()
	if err != nil {
		return err
	}
	if opts.Deleted {
		deleted, err := listDeletedVaults(opts.Ctx, vc)
		if err != nil {
			return err
		}
		switch opts.Format {
		case FormatJSON:
			return printJSON(opts.IO.Out, deleted)
		case FormatID:
			for _, d := range deleted {
				fmt.Fprintln(opts.IO.Out, deref(d.ID))
			}
			return nil
		}
		if len(deleted) == 0 {
			fmt.Fprintln(opts.IO.Out, "No deleted vaults")
			return nil
		}
		tw := newTable(opts.IO.Out)
		row(tw, "NAME", "LOCATION", "DELETED", "PURGED AT", "PURGE PROTECTION")
		for _, d := range deleted {
			p := d.Properties
			row(tw, *d.Name, deref(p.Location), timePtr(p.DeletionDate), timePtr(p.ScheduledPurgeDate), yesNo(p.PurgeProtectionEnabled != nil && *p.PurgeProtectionEnabled))
		}
		return tw.Flush()
	}
	vaults := []*armkeyvault.Vault{}
	add := func(v []*armkeyvault.Vault) { vaults = append(vaults, v...) }
	if opts.ResourceGroup != "" {
		for pg := vc.NewListByResourceGroupPager(opts.ResourceGroup, nil); pg.More(); {
			page, err := pg.NextPage(opts.Ctx)
			if err != nil {
				return sdkError(err)
			}
			add(page.Value)
		}
	} else {
		for pg := vc.NewListBySubscriptionPager(nil); pg.More(); {
			page, err := pg.NextPage(opts.Ctx)
			if err != nil {
				return sdkError(err)
			}
			add(page.Value)
		}
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, vaults)
	case FormatID:
		for _, v := range vaults {
			fmt.Fprintln(opts.IO.Out, deref(v.ID))
		}
		return nil
	}
	if len(vaults) == 0 {
		fmt.Fprintln(opts.IO.Out, "No vaults")
		return nil
	}
	tw := newTable(opts.IO.Out)
	row(tw, "NAME", "GROUP", "LOCATION", "MODEL", "PURGE PROTECTION", "URI")
	for _, v := range vaults {
		row(tw, deref(v.Name), groupOf(deref(v.ID)), deref(v.Location), model(v.Properties), yesNo(purgeProtected(v.Properties)), deref(v.Properties.VaultURI))
	}
	return tw.Flush()
}

func listDeletedVaults(ctx context.Context, vc *armkeyvault.VaultsClient) ([]*armkeyvault.DeletedVault, error) {
	out := []*armkeyvault.DeletedVault{}
	for pg := vc.NewListDeletedPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, sdkError(err)
		}
		out = append(out, page.Value...)
	}
	return out, nil
}

// findDeleted returns the deleted vault called name.
func findDeleted(ctx context.Context, vc *armkeyvault.VaultsClient, name, subscription string) (*armkeyvault.DeletedVault, error) {
	deleted, err := listDeletedVaults(ctx, vc)
	if err != nil {
		return nil, err
	}
	for _, d := range deleted {
		if d.Name != nil && strings.EqualFold(*d.Name, name) && d.Properties != nil {
			return d, nil
		}
	}
	return nil, keyhold.Errorf(keyhold.CodeResourceNotFound,
		"no deleted vault called %q in subscription %s: see keyhold keyvault list --deleted", name, subscription)
}

// KeyVaultDeleteOptions are the parsed arguments of "keyhold keyvault delete".
type KeyVaultDeleteOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc

	VaultTarget
}

func newCmdKeyVaultDelete(f *Factory, runF func(*KeyVaultDeleteOptions) error) *cobra.Command {
	opts := &KeyVaultDeleteOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "delete -n NAME [-g GROUP]",
		Short: "Delete a key vault (recoverable until its retention passes)",
		Long: `Soft-delete a key vault: it and its keys stop answering, and stay recoverable
("keyhold keyvault recover") until the vault's retention has passed, when
they are purged for good. Every environment whose key is in the vault loses
access to it.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultDeleteRun(opts)
		},
	}
	opts.VaultTarget.flags(cmd, groupLookedUp)
	return cmd
}

func keyVaultDeleteRun(opts *KeyVaultDeleteOptions) error {
	vc, rg, err := opts.VaultTarget.resolve(opts.Ctx, opts.Clients)
	if err != nil {
		return err
	}
	v, err := vc.Get(opts.Ctx, rg, opts.Name, nil)
	if err != nil {
		return sdkError(err)
	}
	if _, err := vc.Delete(opts.Ctx, rg, opts.Name, nil); err != nil {
		return sdkError(err)
	}
	msg := fmt.Sprintf("Deleted vault %s", opts.Name)
	if d, err := vc.GetDeleted(opts.Ctx, opts.Name, deref(v.Location), nil); err == nil && d.Properties != nil {
		msg += "; recoverable until " + timePtr(d.Properties.ScheduledPurgeDate)
	}
	fmt.Fprintf(opts.IO.Out, "%s (keyhold keyvault recover -n %s)\n", msg, opts.Name)
	return nil
}

// KeyVaultRecoverOptions are the parsed arguments of "keyhold keyvault recover".
type KeyVaultRecoverOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	Subscription string
	Name         string
}

func newCmdKeyVaultRecover(f *Factory, runF func(*KeyVaultRecoverOptions) error) *cobra.Command {
	opts := &KeyVaultRecoverOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "recover -n NAME",
		Short: "Recover a deleted key vault, with its keys",
		Long: `Recover a soft-deleted key vault into the resource group it was deleted from
(which must still exist), with its keys and access rules.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultRecoverRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Vault `NAME`")
	cmd.Flags().StringVar(&opts.Subscription, "subscription", "", "Subscription `ID` (default: the login's)")
	return cmd
}

func keyVaultRecoverRun(opts *KeyVaultRecoverOptions) error {
	c, err := opts.Clients(opts.Subscription)
	if err != nil {
		return err
	}
	vc, err := c.vaults()
	if err != nil {
		return err
	}
	d, err := findDeleted(opts.Ctx, vc, opts.Name, c.subscription)
	if err != nil {
		return err
	}
	rg := groupOf(deref(d.Properties.VaultID))
	poller, err := vc.BeginCreateOrUpdate(opts.Ctx, rg, *d.Name, armkeyvault.VaultCreateOrUpdateParameters{
		Location: d.Properties.Location,
		Properties: &armkeyvault.VaultProperties{CreateMode: to.Ptr(armkeyvault.CreateModeRecover), TenantID: to.Ptr(c.tenantID),
			SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}},
	}, nil)
	if err != nil {
		return sdkError(err)
	}
	res, err := poller.PollUntilDone(opts.Ctx, nil)
	if err != nil {
		return sdkError(err)
	}
	return printVault(opts.IO.Out, opts.Format, &res.Vault)
}

// KeyVaultPurgeOptions are the parsed arguments of "keyhold keyvault purge".
type KeyVaultPurgeOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc

	Subscription string
	Name         string
	Confirmed    bool
}

func newCmdKeyVaultPurge(f *Factory, runF func(*KeyVaultPurgeOptions) error) *cobra.Command {
	opts := &KeyVaultPurgeOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "purge -n NAME --yes",
		Short: "Destroy a deleted key vault and its keys for good",
		Long: `Purge a soft-deleted key vault: it and its keys are destroyed and can never be
recovered; whatever they wrapped can never be unwrapped again. A vault with
purge protection can't be purged before its retention has passed. It needs
--yes; keyhold never prompts.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if !opts.Confirmed {
				return usageErrorf("purging vault %q destroys its keys for good: pass --yes to confirm", opts.Name)
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultPurgeRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Name, "name", "n", "", "Vault `NAME`")
	cmd.Flags().StringVar(&opts.Subscription, "subscription", "", "Subscription `ID` (default: the login's)")
	cmd.Flags().BoolVarP(&opts.Confirmed, "yes", "y", false, "Confirm the purge")
	return cmd
}

func keyVaultPurgeRun(opts *KeyVaultPurgeOptions) error {
	c, err := opts.Clients(opts.Subscription)
	if err != nil {
		return err
	}
	vc, err := c.vaults()
	if err != nil {
		return err
	}
	d, err := findDeleted(opts.Ctx, vc, opts.Name, c.subscription)
	if err != nil {
		return err
	}
	poller, err := vc.BeginPurgeDeleted(opts.Ctx, *d.Name, deref(d.Properties.Location), nil)
	if err != nil {
		return sdkError(err)
	}
	if _, err := poller.PollUntilDone(opts.Ctx, nil); err != nil {
		return sdkError(err)
	}
	fmt.Fprintf(opts.IO.Out, "Purged vault %s\n", *d.Name)
	return nil
}

// KeyVaultSetPolicyOptions are the parsed arguments of "keyhold keyvault set-policy".
type KeyVaultSetPolicyOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	VaultTarget
	ObjectID       string
	TenantID       string
	KeyPermissions []string // as armkeyvault spells them
}

func newCmdKeyVaultSetPolicy(f *Factory, runF func(*KeyVaultSetPolicyOptions) error) *cobra.Command {
	opts := &KeyVaultSetPolicyOptions{IO: f.IO, Clients: f.keyVaultClients}
	var perms string
	names := make([]string, 0, 24)
	for _, p := range armkeyvault.PossibleKeyPermissionsValues() {
		names = append(names, string(p))
	}
	cmd := &cobra.Command{
		Use:   "set-policy -n NAME --object-id ID --key-permissions PERMS",
		Short: "Set a principal's key permissions on a vault with access policies",
		Long: `Set the key permissions of one principal in the access policies of a vault
that uses them (not RBAC): the principal's policy then grants exactly the
permissions given. An enterprise policy's identity needs get, wrapKey and
unwrapKey.

Key permissions:
` + wrapList(names, "  ", 78),
		Example: `  keyhold keyvault set-policy -n contoso-kv --object-id 5f8… --key-permissions get,wrapKey,unwrapKey`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "name", "object-id", "key-permissions"); err != nil {
				return err
			}
			opts.KeyPermissions = nil
			for _, p := range splitList(perms) {
				i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, p) })
				if i < 0 {
					return usageErrorf("--key-permissions: %q is not a key permission: use %s", p, strings.Join(names, ", "))
				}
				if !slices.Contains(opts.KeyPermissions, names[i]) {
					opts.KeyPermissions = append(opts.KeyPermissions, names[i])
				}
			}
			if len(opts.KeyPermissions) == 0 {
				return usageErrorf("--key-permissions is empty: give a comma-separated list such as get,wrapKey,unwrapKey")
			}
			if runF != nil {
				return runF(opts)
			}
			return keyVaultSetPolicyRun(opts)
		},
	}
	opts.VaultTarget.flags(cmd, groupLookedUp)
	cmd.Flags().StringVar(&opts.ObjectID, "object-id", "", "Object `ID` of the principal")
	cmd.Flags().StringVar(&opts.TenantID, "tenant", "", "Tenant `ID` of the principal (default: the login's)")
	cmd.Flags().StringVar(&perms, "key-permissions", "", "Comma-separated key `PERMISSIONS`")
	return cmd
}

func keyVaultSetPolicyRun(opts *KeyVaultSetPolicyOptions) error {
	c, err := opts.Clients(opts.Subscription)
	if err != nil {
		return err
	}
	vc, rg, err := opts.VaultTarget.resolve(opts.Ctx, func(string) (*kvClients, error) { return c, nil })
	if err != nil {
		return err
	}
	tenant := opts.TenantID
	if tenant == "" {
		tenant = c.tenantID
	}
	keys := make([]*armkeyvault.KeyPermissions, len(opts.KeyPermissions))
	for i, p := range opts.KeyPermissions {
		keys[i] = to.Ptr(armkeyvault.KeyPermissions(p))
	}
	res, err := vc.UpdateAccessPolicy(opts.Ctx, rg, opts.Name, armkeyvault.AccessPolicyUpdateKindReplace, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
			TenantID: to.Ptr(tenant), ObjectID: to.Ptr(opts.ObjectID), Permissions: &armkeyvault.Permissions{Keys: keys}}}}}, nil)
	if err != nil {
		return sdkError(err)
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, res.VaultAccessPolicyParameters)
	}
	return printAccessPolicies(opts.IO.Out, res.Properties)
}

func printAccessPolicies(w io.Writer, p *armkeyvault.VaultAccessPolicyProperties) error {
	tw := newTable(w)
	row(tw, "OBJECT ID", "TENANT", "KEY PERMISSIONS")
	if p != nil {
		for _, ap := range p.AccessPolicies {
			row(tw, deref(ap.ObjectID), deref(ap.TenantID), keyPerms(ap))
		}
	}
	return tw.Flush()
}

func keyPerms(ap *armkeyvault.AccessPolicyEntry) string {
	if ap.Permissions == nil {
		return ""
	}
	var ps []string
	for _, k := range ap.Permissions.Keys {
		ps = append(ps, string(*k))
	}
	return strings.Join(ps, ",")
}

// printVault prints a vault: its ARM JSON with -o json, its resource id
// with -o id.
func printVault(w io.Writer, format Format, v *armkeyvault.Vault) error {
	switch format {
	case FormatJSON:
		return printJSON(w, v)
	case FormatID:
		_, err := fmt.Fprintln(w, deref(v.ID))
		return err
	}
	p := v.Properties
	if p == nil {
		p = &armkeyvault.VaultProperties{}
	}
	network := "-"
	if n := p.NetworkACLs; n != nil {
		var rules []string
		for _, r := range n.IPRules {
			rules = append(rules, deref(r.Value))
		}
		network = fmt.Sprintf("default %s, bypass %s", deref(n.DefaultAction), deref(n.Bypass))
		if len(rules) > 0 {
			network += ", allow " + strings.Join(rules, " ")
		}
	}
	sku := ""
	if p.SKU != nil {
		sku = deref(p.SKU.Name)
	}
	retention := ""
	if p.SoftDeleteRetentionInDays != nil {
		retention = fmt.Sprintf("%d days", *p.SoftDeleteRetentionInDays)
	}
	tw := newTable(w)
	for _, f := range []struct{ k, v string }{
		{"Name:", deref(v.Name)},
		{"ID:", deref(v.ID)},
		{"Location:", deref(v.Location)},
		{"URI:", deref(p.VaultURI)},
		{"Tenant:", deref(p.TenantID)},
		{"SKU:", sku},
		{"Permission model:", model(p)},
		{"Soft delete retention:", retention},
		{"Purge protection:", yesNo(purgeProtected(p))},
		{"Public network access:", deref(p.PublicNetworkAccess)},
		{"Network rules:", network},
	} {
		row(tw, f.k, f.v)
	}
	for _, ap := range p.AccessPolicies {
		row(tw, "Access policy:", deref(ap.ObjectID)+": "+keyPerms(ap))
	}
	return tw.Flush()
}

func model(p *armkeyvault.VaultProperties) string {
	if p != nil && p.EnableRbacAuthorization != nil && *p.EnableRbacAuthorization {
		return "RBAC"
	}
	return "access policies"
}

func purgeProtected(p *armkeyvault.VaultProperties) bool {
	return p != nil && p.EnablePurgeProtection != nil && *p.EnablePurgeProtection
}

// deref returns *s, or "" for nil.
func deref[S ~string](s *S) string {
	if s == nil {
		return ""
	}
	return string(*s)
}
