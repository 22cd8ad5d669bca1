package http

import (
	nethttp "net/http"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// The key vault page's edits (issue 17): its access policies (the
// access-policy model, through the same UpdateAccessPolicies the API's
// PUT …/accessPolicies/{add|remove} calls) and its network rules (through
// the same PutVault as the API's PATCH of the vault, on the stored vault
// with only the rules changed). The services authorize and check every
// change; the page only decides which buttons to show, from the caller's
// own role assignments at the scope, evaluated by the same
// keyhold.Allowed the services use: a person without the action sees no
// button, and a forced POST gets the service's refusal.

// ARM actions behind the page's buttons (the services' own: arm's
// ActionRoleAssignmentWrite, vault's ActionAccessPoliciesWrite and
// ActionVaultWrite).
const (
	actionRoleAssignmentWrite = "Microsoft.Authorization/roleAssignments/write"
	actionAccessPoliciesWrite = "Microsoft.KeyVault/vaults/accessPolicies/write"
	actionVaultWrite          = "Microsoft.KeyVault/vaults/write"
)

// editablePermissions are the key permissions the access-policy form
// offers, as the portal groups them: key management, then cryptographic
// operations, then rotation policy operations.
var editablePermissions = []string{keyhold.PermGet, keyhold.PermList, keyhold.PermCreate, keyhold.PermUpdate, keyhold.PermDelete, keyhold.PermRecover,
	keyhold.PermRotate, keyhold.PermWrapKey, keyhold.PermUnwrapKey, keyhold.PermGetRotationPolicy, keyhold.PermSetRotationPolicy}

// cmkPermissions are what the spec has an enterprise policy's identity
// granted on a vault of the access-policy model: Get, Wrap key and Unwrap
// key. The form starts with them ticked.
var cmkPermissions = []string{keyhold.PermGet, keyhold.PermWrapKey, keyhold.PermUnwrapKey}

// permissionLabel is how the form names a key permission.
var permissionLabel = map[string]string{
	keyhold.PermGet: "Get", keyhold.PermList: "List", keyhold.PermCreate: "Create", keyhold.PermUpdate: "Update",
	keyhold.PermDelete: "Delete", keyhold.PermRecover: "Recover", keyhold.PermRotate: "Rotate",
	keyhold.PermWrapKey: "Wrap key", keyhold.PermUnwrapKey: "Unwrap key",
	keyhold.PermGetRotationPolicy: "Get rotation policy", keyhold.PermSetRotationPolicy: "Set rotation policy",
}

// permOption is a checkbox of the access-policy form.
type permOption struct {
	Value, Label string
	Checked      bool
}

// vaultEdit is what the vault page lets the caller change, and its forms.
type vaultEdit struct {
	// CanPolicies and CanNetwork: the caller holds the action at the
	// vault; ReadOnly says why not, when neither.
	CanPolicies, CanNetwork bool
	ReadOnly                string
	Perms                   []permOption
	Net                     networkForm
}

// networkForm is the network rules form: the vault's rules, or what was
// posted when the service refused it.
type networkForm struct {
	Public, Default string
	Bypass          bool
	IPs             string // one address or range a line
}

func networkFormOf(v *keyhold.Vault) networkForm {
	f := networkForm{Public: v.PublicNetworkAccess, Default: v.NetworkACLs.DefaultAction, Bypass: v.NetworkACLs.Bypass != keyhold.BypassNone,
		IPs: strings.Join(v.NetworkACLs.IPRules, "\n")}
	if f.Public == "" {
		f.Public = keyhold.PublicAccessEnabled
	}
	if f.Default == "" {
		f.Default = keyhold.NetworkAllow
	}
	return f
}

// callerMay reports which of actions the caller's role assignments that
// apply at scope grant, by the rule the services apply; the refusal to
// list them when they can't be read (then none is granted).
func (s *Server) callerMay(r *nethttp.Request, scope string, actions ...string) ([]bool, string) {
	may := make([]bool, len(actions))
	id, err := keyhold.Caller(r.Context())
	var as []*keyhold.RoleAssignment
	if err == nil {
		if s.ARM.Resources == nil {
			return may, "this server has no resource manager"
		}
		as, err = s.ARM.Resources.ListRoleAssignments(r.Context(), scope, keyhold.AssignmentFilter{PrincipalID: id.PrincipalID, AtScope: true})
	}
	if err != nil {
		if msg, _, ferr := adminRefusal(err); ferr == nil {
			return may, msg
		}
		return may, "your role assignments could not be read"
	}
	for i, a := range actions {
		may[i] = keyhold.Allowed(as, scope, a, false)
	}
	return may, ""
}

// adminVaultEdit fills d's edit forms and what the caller may change.
func (s *Server) adminVaultEdit(r *nethttp.Request, d *vaultPageData) {
	e := &d.Edit
	may, why := s.callerMay(r, d.Vault.ID(), actionAccessPoliciesWrite, actionVaultWrite)
	e.CanPolicies, e.CanNetwork = may[0], may[1]
	if !e.CanPolicies && !e.CanNetwork {
		e.ReadOnly = why
		if why == "" {
			e.ReadOnly = "You can see this key vault but not change its access policies or network rules: that needs Owner or Contributor on it (" +
				actionAccessPoliciesWrite + ", " + actionVaultWrite + ")."
		}
	}
	for _, p := range editablePermissions {
		e.Perms = append(e.Perms, permOption{Value: p, Label: permissionLabel[p], Checked: slices.Contains(cmkPermissions, p)})
	}
	e.Net = networkFormOf(d.Vault)
}

// adminVaultControl runs a control-plane action of the vault page as the
// caller: access-policy-add (object, perm…), access-policy-remove (object,
// tenant) or network (public, default, bypass, ips). ok is false for an
// action that isn't one of these.
func (s *Server) adminVaultControl(r *nethttp.Request, d *vaultPageData) (done string, ok bool, err error) {
	f := r.PostForm
	v := d.Vault
	switch f.Get("action") {
	case "access-policy-add":
		p := keyhold.AccessPolicy{ObjectID: strings.TrimSpace(f.Get("object")), Keys: f["perm"]}
		_, err = s.KeyVault.Vaults.UpdateAccessPolicies(r.Context(), v.SubscriptionID, v.ResourceGroup, v.Name, "add", []keyhold.AccessPolicy{p})
		return "policy-added", true, err
	case "access-policy-remove":
		p := keyhold.AccessPolicy{ObjectID: f.Get("object"), TenantID: f.Get("tenant")}
		_, err = s.KeyVault.Vaults.UpdateAccessPolicies(r.Context(), v.SubscriptionID, v.ResourceGroup, v.Name, "remove", []keyhold.AccessPolicy{p})
		return "policy-removed", true, err
	case "network":
		n := networkForm{Public: f.Get("public"), Default: f.Get("default"), Bypass: f.Get("bypass") == "on", IPs: f.Get("ips")}
		d.Edit.Net = n
		nv := *v
		nv.PublicNetworkAccess = n.Public
		nv.NetworkACLs = keyhold.NetworkACLs{DefaultAction: n.Default, Bypass: keyhold.BypassNone, IPRules: ipLines(n.IPs)}
		if n.Bypass {
			nv.NetworkACLs.Bypass = keyhold.BypassAzureServices
		}
		_, err = s.KeyVault.Vaults.PutVault(r.Context(), &nv)
		return "network-set", true, err
	}
	return "", false, nil
}

// ipLines splits the form's addresses: one a line, or separated by
// commas or spaces.
func ipLines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}
