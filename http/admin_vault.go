package http

import (
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// The admin center's pages for the key vault administrator: vaults
// (created with soft delete and purge protection, as the spec requires),
// their keys and versions (create, rotate), access (role assignments at
// the vault or a policy), and New policy, which deploys the spec's
// template through the deployments service. Key operations run as the
// person with a token for the vault's audience, as a client's would.

// policyTemplate is the spec's enterprise policy template, with
// parameters (docs/examples/enterprise-policy.json).
var policyTemplate = mustRead(adminFiles, "admin/policy-template.json")

// vaultRow is a vault on the vaults page.
type vaultRow struct {
	Vault *keyhold.Vault
	Path  string
}

func vaultPagePath(v *keyhold.Vault) string {
	return adminPrefix + "/vaults/" + url.PathEscape(v.SubscriptionID) + "/" + url.PathEscape(v.ResourceGroup) + "/" + url.PathEscape(v.Name)
}

type vaultsData struct {
	Vaults        []vaultRow
	Subscriptions []*keyhold.Subscription
	Form          url.Values
}

// adminVaultList fills d with the vaults the caller can read.
func (s *Server) adminVaultList(r *nethttp.Request, d *vaultsData) error {
	if s.KeyVault.Vaults == nil || s.ARM.Resources == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server has no key vault")
	}
	subs, err := s.ARM.Resources.Subscriptions(r.Context())
	if err != nil {
		return err
	}
	d.Subscriptions = subs
	for _, sub := range subs {
		vs, err := s.KeyVault.Vaults.ListVaults(r.Context(), sub.ID, "")
		if err != nil {
			return err
		}
		for _, v := range vs {
			d.Vaults = append(d.Vaults, vaultRow{Vault: v, Path: vaultPagePath(v)})
		}
	}
	slices.SortFunc(d.Vaults, func(a, b vaultRow) int { return strings.Compare(a.Vault.Name, b.Vault.Name) })
	return nil
}

// adminVaults: GET /admin/vaults.
func (s *Server) adminVaults(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	d := &vaultsData{Form: url.Values{"location": {"westeurope"}, "resourceGroup": {"cmk"}}}
	v.Title, v.Nav, v.Data = "Key vaults", "vaults", d
	if err := s.adminVaultList(r, d); err != nil {
		return adminFail(w, v, "vaults", err)
	}
	return renderAdmin(w, nethttp.StatusOK, "vaults", v)
}

// adminFail renders page with the API's refusal, or returns a fault.
func adminFail(w nethttp.ResponseWriter, v adminView, page string, err error) error {
	msg, status, err := adminRefusal(err)
	if err != nil {
		return err
	}
	v.Error = msg
	return renderAdmin(w, status, page, v)
}

// adminVaultsAction: POST /admin/vaults creates a vault with soft delete
// (90 days), purge protection and RBAC authorization.
func (s *Server) adminVaultsAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	f := r.PostForm
	d := &vaultsData{Form: f}
	v.Title, v.Nav, v.Data = "Key vaults", "vaults", d
	if err := s.adminVaultList(r, d); err != nil {
		return adminFail(w, v, "vaults", err)
	}
	kv := &keyhold.Vault{SubscriptionID: f.Get("subscription"), ResourceGroup: strings.TrimSpace(f.Get("resourceGroup")), Name: strings.TrimSpace(f.Get("name")),
		Location: strings.TrimSpace(f.Get("location")), TenantID: v.sess.tenant, SKU: "standard", SoftDeleteRetentionDays: 90,
		EnablePurgeProtection: true, EnableRbacAuthorization: true}
	if _, err := s.KeyVault.Vaults.PutVault(r.Context(), kv); err != nil {
		return adminFail(w, v, "vaults", err)
	}
	nethttp.Redirect(w, r, vaultPagePath(kv)+"?done=vault-created", nethttp.StatusSeeOther)
	return nil
}

// keyRow is a key with its versions.
type keyRow struct {
	Name     string
	Type     string
	Versions []*keyhold.KeyBundle
}

// accessData is an access section: the role assignments at a scope and
// the form to grant one.
type accessData struct {
	Scope       string
	Back        string // the page to come back to
	Assignments []accessRow
	Roles       []string
	Error       string // the API's refusal to list them
	// CanAssign: the caller may assign roles at the scope (roleAssignments/write);
	// without it the section has no buttons and ReadOnly says why.
	CanAssign bool
	ReadOnly  string
	// Scopes, when set, are the scopes the grant form offers (the vault
	// and its keys); otherwise it grants at Scope.
	Scopes []scopeOption
}

// scopeOption is a scope the grant form offers.
type scopeOption struct{ ID, Label string }

type accessRow struct {
	A    *keyhold.RoleAssignment
	Role string
	// Here: the assignment is at the page's scope or below it (a key), so
	// it can be removed here; Where names its scope otherwise.
	Here  bool
	Where string
}

type vaultPageData struct {
	Vault     *keyhold.Vault
	Path      string
	Keys      []keyRow
	KeysError string // the data plane's refusal to list keys
	Access    *accessData
	More      vaultMore // rotation, who may wrap, networking (admin_vault_more.go)
	Edit      vaultEdit // access policies and network rules (admin_vault_edit.go)
}

// vaultRoles are the roles the access forms offer.
var vaultRoles = []string{keyhold.RoleKeyVaultCryptoServiceEncryptUser, keyhold.RoleKeyVaultCryptoOfficer, keyhold.RoleKeyVaultAdministrator, keyhold.RoleReader}

// adminAccess lists the role assignments at scope.
func (s *Server) adminAccess(r *nethttp.Request, scope, back string, roles []string) *accessData {
	a := &accessData{Scope: scope, Back: back, Roles: roles}
	if s.ARM.Resources == nil {
		a.Error = "this server has no resource manager"
		return a
	}
	as, err := s.ARM.Resources.ListRoleAssignments(r.Context(), scope, keyhold.AssignmentFilter{})
	if err != nil {
		if msg, _, ferr := adminRefusal(err); ferr == nil {
			a.Error = msg
		} else {
			a.Error = "the role assignments could not be read"
		}
		return a
	}
	for _, x := range as {
		name := x.RoleDefinitionID
		if d, ok := keyhold.FindRoleDefinition(x.RoleDefinitionID); ok {
			name = d.Name
		}
		row := accessRow{A: x, Role: name, Here: keyhold.ScopeCovers(scope, x.Scope), Where: scopeLabel(scope, x.Scope)}
		a.Assignments = append(a.Assignments, row)
	}
	may, why := s.callerMay(r, scope, actionRoleAssignmentWrite)
	a.CanAssign = may[0]
	if !a.CanAssign {
		a.ReadOnly = why
		if why == "" {
			a.ReadOnly = "You can see these role assignments but not change them: that needs Owner or User Access Administrator here (" + actionRoleAssignmentWrite + ")."
		}
	}
	return a
}

// scopeLabel names an assignment's scope as the access table shows it,
// from the page's scope: "here", "key k1" below it, or where it is
// inherited from.
func scopeLabel(page, scope string) string {
	p, sc := strings.TrimSuffix(page, "/"), strings.TrimSuffix(scope, "/")
	switch {
	case strings.EqualFold(p, sc):
		return "here"
	case keyhold.ScopeCovers(p, sc):
		rest := sc[len(p)+1:]
		if k, ok := strings.CutPrefix(rest, "keys/"); ok {
			return "key " + k
		}
		return rest
	}
	if parsed, err := keyhold.ParseScope(sc); err == nil {
		return "inherited from the " + parsed.Kind()
	}
	return "inherited"
}

// adminVaultView fills v with a vault's page.
func (s *Server) adminVaultView(r *nethttp.Request, v *adminView) error {
	if s.KeyVault.Vaults == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server has no key vault")
	}
	kv, err := s.KeyVault.Vaults.GetVault(r.Context(), r.PathValue("sub"), r.PathValue("rg"), r.PathValue("name"))
	if err != nil {
		return err
	}
	d := &vaultPageData{Vault: kv, Path: vaultPagePath(kv)}
	v.Title, v.Nav, v.Data = "Key vault "+kv.Name, "vaults", d
	d.Access = s.adminAccess(r, kv.ID(), d.Path, vaultRoles)
	d.KeysError = s.adminKeys(r, v.sess, kv.Name, d)
	s.adminVaultMore(r, v.sess, d)
	s.adminVaultEdit(r, d)
	// Roles can be assigned on the vault or on one of its keys.
	d.Access.Scopes = []scopeOption{{ID: kv.ID(), Label: "This key vault"}}
	for _, k := range d.Keys {
		d.Access.Scopes = append(d.Access.Scopes, scopeOption{ID: kv.ID() + "/keys/" + k.Name, Label: "Key " + k.Name})
	}
	return nil
}

// adminKeys lists a vault's keys and versions as the person; it returns
// the data plane's refusal, if any.
func (s *Server) adminKeys(r *nethttp.Request, sess *adminSession, vault string, d *vaultPageData) string {
	ctx, err := s.adminAs(r, sess, keyhold.AudienceVault)
	if err == nil {
		ctx = keyhold.NewOriginContext(ctx, originOf(r))
		var keys []*keyhold.KeyBundle
		if keys, err = s.KeyVault.Vaults.ListKeys(ctx, vault); err == nil {
			for _, k := range keys {
				row := keyRow{Name: k.Key.Name, Type: k.Key.Type}
				if row.Versions, err = s.KeyVault.Vaults.ListKeyVersions(ctx, vault, k.Key.Name); err != nil {
					break
				}
				d.Keys = append(d.Keys, row)
			}
		}
	}
	if err != nil {
		if msg, _, ferr := adminRefusal(err); ferr == nil {
			return msg
		}
		return "the keys could not be read"
	}
	return ""
}

// adminVault: GET /admin/vaults/{sub}/{rg}/{name}.
func (s *Server) adminVault(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	v.Done = doneNote(r.URL.Query().Get("done"))
	if err := s.adminVaultView(r, &v); err != nil {
		v.Title = "Key vault"
		return adminFail(w, v, "refused", err)
	}
	return renderAdmin(w, nethttp.StatusOK, "vault", v)
}

// adminVaultAction: POST /admin/vaults/{sub}/{rg}/{name} with
// action=create-key (key, kty, size) or rotate (key).
func (s *Server) adminVaultAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	view := v
	if err := s.adminVaultView(r, &view); err != nil {
		v.Title = "Key vault"
		return adminFail(w, v, "refused", err)
	}
	d := view.Data.(*vaultPageData)
	f := r.PostForm
	// Access policies and network rules: the control plane, as the caller.
	if done, ok, err := s.adminVaultControl(r, d); ok {
		if err != nil {
			return adminFail(w, view, "vault", err)
		}
		nethttp.Redirect(w, r, d.Path+"?done="+done, nethttp.StatusSeeOther)
		return nil
	}
	ctx, err := s.adminAs(r, v.sess, keyhold.AudienceVault)
	done := ""
	if err == nil {
		ctx = keyhold.NewOriginContext(ctx, originOf(r))
		switch f.Get("action") {
		case "create-key":
			size, _ := strconv.Atoi(f.Get("size"))
			_, err = s.KeyVault.Vaults.CreateKey(ctx, d.Vault.Name, strings.TrimSpace(f.Get("key")), keyhold.CreateKeyParams{Type: f.Get("kty"), Size: size})
			done = "key-created"
		case "rotate":
			_, err = s.KeyVault.Vaults.RotateKey(ctx, d.Vault.Name, f.Get("key"))
			done = "key-rotated"
		case "rotation-policy":
			err = s.adminRotationPolicy(r, v.sess, d.Vault.Name, f.Get("key"), f.Get("days"))
			done = "rotation-set"
		default:
			err = keyhold.Errorf(keyhold.CodeBadRequest, "action %q is not one of this page's: use create-key, rotate, rotation-policy, access-policy-add, access-policy-remove or network", keyhold.Clip(f.Get("action")))
		}
	}
	if err != nil {
		return adminFail(w, view, "vault", err)
	}
	nethttp.Redirect(w, r, d.Path+"?done="+done, nethttp.StatusSeeOther)
	return nil
}

// adminAccessAction: POST /admin/access with scope, back and action=grant
// (principal, role) or revoke (assignment): a role assignment at a
// vault or a policy, through the resource manager.
func (s *Server) adminAccessAction(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	f := r.PostForm
	scope, back := f.Get("scope"), f.Get("back")
	if !strings.HasPrefix(back, adminPrefix+"/") || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\?#") {
		back = adminPrefix + "/vaults"
	}
	var err error
	done := ""
	switch f.Get("action") {
	case "grant":
		role, ok := keyhold.FindRoleDefinition(f.Get("role"))
		if !ok {
			err = keyhold.Errorf(keyhold.CodeBadRequest, "role %q is not a built-in role: choose one of %s", keyhold.Clip(f.Get("role")), strings.Join(vaultRoles, ", "))
			break
		}
		err = s.ARM.Resources.CreateRoleAssignment(r.Context(), &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: scope, RoleDefinitionID: role.ID, PrincipalID: strings.TrimSpace(f.Get("principal"))})
		done = "granted"
	case "revoke":
		_, err = s.ARM.Resources.DeleteRoleAssignment(r.Context(), scope, f.Get("assignment"))
		done = "revoked"
	default:
		err = keyhold.Errorf(keyhold.CodeBadRequest, "action %q is not one of this page's: use grant or revoke", keyhold.Clip(f.Get("action")))
	}
	if err != nil {
		msg, status, ferr := adminRefusal(err)
		if ferr != nil {
			return ferr
		}
		v.Title, v.Error = "Access", msg+" Nothing was changed."
		v.Data = back
		return renderAdmin(w, status, "access-refused", v)
	}
	nethttp.Redirect(w, r, back+"?done="+done, nethttp.StatusSeeOther)
	return nil
}

type newPolicyData struct {
	Vaults []vaultRow
	Form   url.Values
}

// adminNewPolicy: GET and POST /admin/cmk/new, the guided form that
// deploys the spec's template (in the chosen vault's resource group, as
// its resourceId() names the vault there) through the deployments
// service.
func (s *Server) adminNewPolicy(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	vd := &vaultsData{}
	d := &newPolicyData{Form: url.Values{"location": {"europe"}}}
	v.Title, v.Nav, v.Data = "New policy", "cmk", d
	if err := s.adminVaultList(r, vd); err != nil {
		return adminFail(w, v, "newpolicy", err)
	}
	d.Vaults = vd.Vaults
	if r.Method == "GET" {
		return renderAdmin(w, nethttp.StatusOK, "newpolicy", v)
	}
	f := r.PostForm
	d.Form = f
	if s.Policies.Deployments == nil {
		return adminFail(w, v, "newpolicy", keyhold.Errorf(keyhold.CodeNotSupported, "this server deploys no templates"))
	}
	var kv *keyhold.Vault
	for _, row := range vd.Vaults {
		if row.Vault.ID() == f.Get("vault") {
			kv = row.Vault
		}
	}
	if kv == nil {
		return adminFail(w, v, "newpolicy", keyhold.Errorf(keyhold.CodeBadRequest, "choose a key vault from the list: %q is not one you can read", keyhold.Clip(f.Get("vault"))))
	}
	params, _ := json.Marshal(map[string]map[string]string{
		"policyName": {"value": strings.TrimSpace(f.Get("name"))}, "location": {"value": strings.TrimSpace(f.Get("location"))},
		"keyVaultName": {"value": kv.Name}, "keyName": {"value": strings.TrimSpace(f.Get("key"))},
	})
	dep, _, err := s.Policies.Deployments.Deploy(r.Context(), kv.SubscriptionID, kv.ResourceGroup, "admin-center-"+strings.TrimSpace(f.Get("name")),
		keyhold.DeploymentRequest{Mode: "Incremental", Template: json.RawMessage(policyTemplate), Parameters: params})
	if err != nil {
		return adminFail(w, v, "newpolicy", err)
	}
	if dep.ErrorMessage != "" {
		return adminFail(w, v, "newpolicy", keyhold.Errorf(keyhold.CodeBadRequest, "the deployment failed: %s: %s", dep.ErrorCode, dep.ErrorMessage))
	}
	nethttp.Redirect(w, r, adminPrefix+"/cmk/policies/"+url.PathEscape(kv.SubscriptionID)+"/"+url.PathEscape(kv.ResourceGroup)+"/"+url.PathEscape(strings.TrimSpace(f.Get("name")))+"?done=deployed", nethttp.StatusSeeOther)
	return nil
}
