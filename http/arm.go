package http

// The resource manager routes (the directory's are in directory.go).
//
// Resource manager (Azure Resource Manager's shapes, management audience):
//
//	GET    /subscriptions[/{sub}]
//	PUT    /subscriptions/{sub}/resourceGroups/{rg}          201 created, 200 updated
//	GET    /subscriptions/{sub}/resourceGroups[/{rg}]
//	DELETE /subscriptions/{sub}/resourceGroups/{rg}          200
//	POST   /subscriptions/{sub}/providers/{namespace}/register
//	GET    /subscriptions/{sub}/providers[/{namespace}]
//	GET    {scope}/providers/Microsoft.Authorization/roleDefinitions[/{id}][?$filter=roleName eq '…']
//	PUT    {scope}/providers/Microsoft.Authorization/roleAssignments/{name}   201
//	GET    {scope}/providers/Microsoft.Authorization/roleAssignments[/{name}][?$filter=atScope() and principalId eq '…']
//	DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{name}   200, 204 if none
//
// {scope} has any length (subscription, resource group or resource), so
// the Microsoft.Authorization routes are catch-alls under /subscriptions/
// that parse the path; the ServeMux prefers any more specific pattern, such
// as a vault's. Paths match in any case (armpath.go).

import (
	nethttp "net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// ARMAPI holds the services behind the resource manager and directory
// routes. A nil field serves none of its routes.
type ARMAPI struct {
	// Resources serves resource groups, providers and role-based access
	// control (an *arm.Service).
	Resources keyhold.ResourceManager
	// Directory serves principals, directory roles and environment
	// membership (an *arm.Service).
	Directory keyhold.Directory
}

// Paths of the resource manager routes.
const (
	subsPath      = "/subscriptions"
	subPath       = subsPath + "/{sub}"
	groupsPath    = subPath + "/resourceGroups"
	providersPath = subPath + "/providers"
	authzProvider = "/providers/Microsoft.Authorization/"
	maxARMBody    = 64 << 10
	exampleGroup  = `{"location":"westeurope","tags":{"env":"prod"}}`
	exampleAssign = `{"properties":{"roleDefinitionId":"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6","principalId":"…","principalType":"ServicePrincipal"}}`
)

// armRoute declares a route of the resource manager or the directory: a
// PUT or POST takes a JSON body up to maxARMBody.
func armRoute(method, pattern string, auth []keyhold.Audience, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
	rt := route{Method: method, Pattern: pattern, Auth: auth, Timeout: apiTimeout, Handler: h}
	if method == "PUT" || method == "POST" {
		rt.Body, rt.MaxBody = bodyJSON, maxARMBody
	}
	return rt
}

// armRoutes declares the resource manager routes.
func (s *Server) armRoutes() []route {
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	r := armRoute
	var routes []route
	if s.ARM.Resources != nil {
		routes = append(routes,
			r("GET", subsPath, mgmt, s.listSubscriptions),
			r("GET", subPath, mgmt, s.getSubscription),
			r("PUT", groupsPath+"/{rg}", mgmt, s.putResourceGroup),
			r("GET", groupsPath+"/{rg}", mgmt, s.getResourceGroup),
			r("DELETE", groupsPath+"/{rg}", mgmt, s.deleteResourceGroup),
			r("GET", groupsPath, mgmt, s.listResourceGroups),
			r("POST", providersPath+"/{ns}/register", mgmt, s.registerProvider),
			r("GET", providersPath+"/{ns}", mgmt, s.getProvider),
			r("GET", providersPath, mgmt, s.listProviders),
			// {scope}/providers/Microsoft.Authorization/…, at any depth.
			r("GET", subsPath+"/{path...}", mgmt, s.getAuthorization),
			r("PUT", subsPath+"/{path...}", mgmt, s.putRoleAssignment),
			r("DELETE", subsPath+"/{path...}", mgmt, s.deleteRoleAssignment),
		)
	}
	return routes
}

// --- subscriptions -----------------------------------------------------------

type subscriptionJSON struct {
	ID                  string `json:"id"`
	SubscriptionID      string `json:"subscriptionId"`
	TenantID            string `json:"tenantId"`
	DisplayName         string `json:"displayName"`
	State               string `json:"state"`
	AuthorizationSource string `json:"authorizationSource"`
}

func toSubscriptionJSON(sub *keyhold.Subscription) subscriptionJSON {
	return subscriptionJSON{ID: "/subscriptions/" + sub.ID, SubscriptionID: sub.ID, TenantID: sub.TenantID,
		DisplayName: sub.DisplayName, State: "Enabled", AuthorizationSource: "RoleBased"}
}

// listSubscriptions: GET /subscriptions.
func (s *Server) listSubscriptions(w nethttp.ResponseWriter, r *nethttp.Request) error {
	subs, err := s.ARM.Resources.Subscriptions(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[subscriptionJSON]{Value: make([]subscriptionJSON, 0, len(subs))}
	for _, sub := range subs {
		out.Value = append(out.Value, toSubscriptionJSON(sub))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getSubscription: GET /subscriptions/{sub}.
func (s *Server) getSubscription(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, err := s.ARM.Resources.Subscription(r.Context(), r.PathValue("sub"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toSubscriptionJSON(sub))
	return nil
}

// --- resource groups ---------------------------------------------------------

type resourceGroupJSON struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Location   string             `json:"location"`
	Tags       map[string]string  `json:"tags,omitempty"`
	Properties provisioningStateJ `json:"properties"`
}

type provisioningStateJ struct {
	ProvisioningState string `json:"provisioningState"`
}

func toResourceGroupJSON(g *keyhold.ResourceGroup) resourceGroupJSON {
	return resourceGroupJSON{ID: g.ID(), Name: g.Name, Type: "Microsoft.Resources/resourceGroups", Location: g.Location,
		Tags: g.Tags, Properties: provisioningStateJ{ProvisioningState: "Succeeded"}}
}

// putResourceGroup: PUT /subscriptions/{sub}/resourceGroups/{rg}, 201 for a
// new group and 200 for an update of its tags.
func (s *Server) putResourceGroup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if err := decodeJSON(body, &in, exampleGroup); err != nil {
		return err
	}
	g := &keyhold.ResourceGroup{SubscriptionID: r.PathValue("sub"), Name: r.PathValue("rg"), Location: in.Location, Tags: in.Tags}
	created, err := s.ARM.Resources.PutResourceGroup(r.Context(), g)
	if err != nil {
		return err
	}
	writePut(w, created, toResourceGroupJSON(g))
	return nil
}

// getResourceGroup: GET /subscriptions/{sub}/resourceGroups/{rg}.
func (s *Server) getResourceGroup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	g, err := s.ARM.Resources.ResourceGroup(r.Context(), r.PathValue("sub"), r.PathValue("rg"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toResourceGroupJSON(g))
	return nil
}

// listResourceGroups: GET /subscriptions/{sub}/resourceGroups.
func (s *Server) listResourceGroups(w nethttp.ResponseWriter, r *nethttp.Request) error {
	gs, err := s.ARM.Resources.ListResourceGroups(r.Context(), r.PathValue("sub"))
	if err != nil {
		return err
	}
	out := listJSON[resourceGroupJSON]{Value: make([]resourceGroupJSON, 0, len(gs))}
	for _, g := range gs {
		out.Value = append(out.Value, toResourceGroupJSON(g))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// deleteResourceGroup: DELETE /subscriptions/{sub}/resourceGroups/{rg}. The
// group is gone when the answer comes, so it is 200 rather than ARM's 202
// with a location to poll, which the SDKs' pollers accept as done.
func (s *Server) deleteResourceGroup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ARM.Resources.DeleteResourceGroup(r.Context(), r.PathValue("sub"), r.PathValue("rg")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusOK)
	return nil
}

// --- providers ---------------------------------------------------------------

type providerJSON struct {
	ID                 string                 `json:"id"`
	Namespace          string                 `json:"namespace"`
	RegistrationState  string                 `json:"registrationState"`
	RegistrationPolicy string                 `json:"registrationPolicy"`
	ResourceTypes      []providerResourceJSON `json:"resourceTypes"`
}

type providerResourceJSON struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations"`
}

func toProviderJSON(p *keyhold.ProviderRegistration) providerJSON {
	out := providerJSON{ID: "/subscriptions/" + p.SubscriptionID + "/providers/" + p.Namespace, Namespace: p.Namespace,
		RegistrationState: p.State, RegistrationPolicy: "RegistrationRequired", ResourceTypes: []providerResourceJSON{}}
	if info, ok := keyhold.Provider(p.Namespace); ok {
		if info.Always {
			out.RegistrationPolicy = "RegistrationFree"
		}
		for _, t := range info.ResourceTypes {
			out.ResourceTypes = append(out.ResourceTypes, providerResourceJSON{ResourceType: t, Locations: []string{}})
		}
	}
	return out
}

// registerProvider: POST /subscriptions/{sub}/providers/{ns}/register.
// The registration is done when the answer comes: Registered, not
// Registering.
func (s *Server) registerProvider(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, err := s.ARM.Resources.RegisterProvider(r.Context(), r.PathValue("sub"), r.PathValue("ns"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toProviderJSON(p))
	return nil
}

// getProvider: GET /subscriptions/{sub}/providers/{ns}.
func (s *Server) getProvider(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, err := s.ARM.Resources.Provider(r.Context(), r.PathValue("sub"), r.PathValue("ns"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toProviderJSON(p))
	return nil
}

// listProviders: GET /subscriptions/{sub}/providers.
func (s *Server) listProviders(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ps, err := s.ARM.Resources.ListProviders(r.Context(), r.PathValue("sub"))
	if err != nil {
		return err
	}
	out := listJSON[providerJSON]{Value: make([]providerJSON, 0, len(ps))}
	for _, p := range ps {
		out.Value = append(out.Value, toProviderJSON(p))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// --- role definitions and assignments ---------------------------------------

// authzPath is a parsed {scope}/providers/Microsoft.Authorization/{kind}[/{name}].
type authzPath struct {
	scope string
	kind  string // "roleAssignments" or "roleDefinitions"
	name  string // "" for a list
}

// parseAuthzPath splits a (canonical) path at its last
// /providers/Microsoft.Authorization/ segment. ok is false for any other
// path under /subscriptions/, which no route serves.
func parseAuthzPath(path string) (p authzPath, ok bool) {
	i := strings.LastIndex(path, authzProvider)
	if i < 0 {
		return p, false
	}
	p.scope = path[:i]
	rest := strings.Split(path[i+len(authzProvider):], "/")
	switch {
	case len(rest) == 1 || (len(rest) == 2 && rest[1] == ""):
	case len(rest) == 2:
		p.name = rest[1]
	default:
		return p, false
	}
	p.kind = rest[0]
	return p, p.kind == "roleAssignments" || p.kind == "roleDefinitions"
}

// noAPI is the answer to a path under /subscriptions/ that no route
// serves, as the router answers an unmatched path.
func noAPI(r *nethttp.Request) error {
	path := r.URL.EscapedPath()
	if len(path) > 200 {
		path = path[:200] + "…"
	}
	return keyhold.Errorf(keyhold.CodeNotFound, "no API at %s %s: see docs/api.md", r.Method, path)
}

// roleDefinitionJSON is a role definition as ARM shows it.
type roleDefinitionJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleDefinitionProperties `json:"properties"`
}

type roleDefinitionProperties struct {
	RoleName         string                `json:"roleName"`
	Description      string                `json:"description"`
	Type             string                `json:"type"`
	Permissions      []rolePermissionsJSON `json:"permissions"`
	AssignableScopes []string              `json:"assignableScopes"`
}

type rolePermissionsJSON struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// nonNil makes a nil list encode as [], as ARM sends it.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// scopeSubscription returns the subscription id of a scope.
func scopeSubscription(scope string) string {
	if sc, err := keyhold.ParseScope(scope); err == nil {
		return sc.SubscriptionID
	}
	return ""
}

func toRoleDefinitionJSON(sub string, d *keyhold.RoleDefinition) roleDefinitionJSON {
	return roleDefinitionJSON{
		ID: keyhold.RoleDefinitionID(sub, d.ID), Name: d.ID, Type: "Microsoft.Authorization/roleDefinitions",
		Properties: roleDefinitionProperties{
			RoleName: d.Name, Description: d.Description, Type: "BuiltInRole",
			Permissions: []rolePermissionsJSON{{Actions: nonNil(d.Actions), NotActions: nonNil(d.NotActions),
				DataActions: nonNil(d.DataActions), NotDataActions: nonNil(d.NotDataActions)}},
			AssignableScopes: []string{"/"},
		},
	}
}

// roleAssignmentJSON is a role assignment as ARM shows it.
type roleAssignmentJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleAssignmentProperties `json:"properties"`
}

type roleAssignmentProperties struct {
	RoleDefinitionID string    `json:"roleDefinitionId"`
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	Scope            string    `json:"scope"`
	CreatedOn        time.Time `json:"createdOn"`
	UpdatedOn        time.Time `json:"updatedOn"`
	CreatedBy        string    `json:"createdBy"`
	UpdatedBy        string    `json:"updatedBy"`
}

func toRoleAssignmentJSON(a *keyhold.RoleAssignment) roleAssignmentJSON {
	return roleAssignmentJSON{
		ID: keyhold.AssignmentID(a.Scope, a.ID), Name: a.ID, Type: "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignmentProperties{
			RoleDefinitionID: keyhold.RoleDefinitionID(scopeSubscription(a.Scope), a.RoleDefinitionID),
			PrincipalID:      a.PrincipalID, PrincipalType: a.PrincipalType, Scope: a.Scope,
			CreatedOn: a.CreatedAt.UTC(), UpdatedOn: a.CreatedAt.UTC(), CreatedBy: a.CreatedBy, UpdatedBy: a.CreatedBy,
		},
	}
}

// fromRoleAssignmentJSON is the client's reverse of toRoleAssignmentJSON.
func fromRoleAssignmentJSON(j *roleAssignmentJSON) *keyhold.RoleAssignment {
	role := j.Properties.RoleDefinitionID
	if i := strings.LastIndex(role, "/"); i >= 0 {
		role = role[i+1:]
	}
	return &keyhold.RoleAssignment{ID: j.Name, Scope: j.Properties.Scope, RoleDefinitionID: role, PrincipalID: j.Properties.PrincipalID,
		PrincipalType: j.Properties.PrincipalType, CreatedBy: j.Properties.CreatedBy, CreatedAt: j.Properties.CreatedOn}
}

// The terms of an OData $filter that the role routes accept.
var (
	filterAndRE  = regexp.MustCompile(`(?i)\s+and\s+`)
	atScopeRE    = regexp.MustCompile(`(?i)^atScope\(\)$`)
	filterEqRE   = regexp.MustCompile(`(?i)^(principalId|roleName|type)\s+eq\s+'([^']*)'$`)
	assignedToRE = regexp.MustCompile(`(?i)^assignedTo\('([^']*)'\)$`)
	filterSyntax = map[string]string{"atscope": "atScope()", "principalid": "principalId eq '{id}'", "assignedto": "assignedTo('{id}')", "rolename": "roleName eq '{name}'", "type": "type eq 'BuiltInRole'"}
)

// odataFilter is a parsed $filter.
type odataFilter struct {
	atScope     bool
	principalID string
	roleName    string
	none        bool // matches nothing (a role type other than BuiltInRole)
}

// parseFilter parses r's $filter: terms joined by "and", each one of those
// allowed ("atscope", "principalid", "assignedto", "rolename", "type").
func parseFilter(r *nethttp.Request, allowed ...string) (odataFilter, error) {
	var f odataFilter
	raw := strings.TrimSpace(r.URL.Query().Get("$filter"))
	if raw == "" {
		return f, nil
	}
	bad := func() error {
		forms := make([]string, len(allowed))
		for i, a := range allowed {
			forms[i] = filterSyntax[a]
		}
		return keyhold.Errorf(keyhold.CodeBadRequest, "The $filter '%s' is not supported here: use %s, joined by 'and'", keyhold.Clip(raw), strings.Join(forms, ", "))
	}
	for _, term := range filterAndRE.Split(raw, -1) {
		term = strings.TrimSpace(term)
		var name, val string
		if atScopeRE.MatchString(term) {
			name = "atscope"
		} else if m := filterEqRE.FindStringSubmatch(term); m != nil {
			name, val = strings.ToLower(m[1]), m[2]
		} else if m := assignedToRE.FindStringSubmatch(term); m != nil {
			name, val = "assignedto", m[1]
		}
		if name == "" || !slices.Contains(allowed, name) {
			return f, bad()
		}
		switch name {
		case "atscope":
			f.atScope = true
		case "principalid", "assignedto":
			f.principalID = val
		case "rolename":
			f.roleName = val
		case "type":
			f.none = f.none || !strings.EqualFold(val, "BuiltInRole")
		}
	}
	return f, nil
}

// getAuthorization: GET {scope}/providers/Microsoft.Authorization/
// roleDefinitions[/{id}] and …/roleAssignments[/{name}].
func (s *Server) getAuthorization(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, ok := parseAuthzPath(r.URL.Path)
	if !ok {
		return noAPI(r)
	}
	ctx := r.Context()
	switch {
	case p.kind == "roleDefinitions" && p.name != "":
		d, err := s.ARM.Resources.RoleDefinition(ctx, p.scope, p.name)
		if err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusOK, toRoleDefinitionJSON(scopeSubscription(p.scope), d))
	case p.kind == "roleDefinitions":
		f, err := parseFilter(r, "rolename", "type")
		if err != nil {
			return err
		}
		ds, err := s.ARM.Resources.RoleDefinitions(ctx, p.scope, f.roleName)
		if err != nil {
			return err
		}
		if f.none {
			ds = nil
		}
		out := listJSON[roleDefinitionJSON]{Value: make([]roleDefinitionJSON, 0, len(ds))}
		for _, d := range ds {
			out.Value = append(out.Value, toRoleDefinitionJSON(scopeSubscription(p.scope), d))
		}
		writeJSON(w, nethttp.StatusOK, out)
	case p.name != "":
		a, err := s.ARM.Resources.RoleAssignment(ctx, p.scope, p.name)
		if err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusOK, toRoleAssignmentJSON(a))
	default:
		f, err := parseFilter(r, "atscope", "principalid", "assignedto")
		if err != nil {
			return err
		}
		as, err := s.ARM.Resources.ListRoleAssignments(ctx, p.scope, keyhold.AssignmentFilter{PrincipalID: f.principalID, AtScope: f.atScope})
		if err != nil {
			return err
		}
		out := listJSON[roleAssignmentJSON]{Value: make([]roleAssignmentJSON, 0, len(as))}
		for _, a := range as {
			out.Value = append(out.Value, toRoleAssignmentJSON(a))
		}
		writeJSON(w, nethttp.StatusOK, out)
	}
	return nil
}

// roleAssignmentIn is the body of PUT …/roleAssignments/{name}.
type roleAssignmentIn struct {
	Properties *struct {
		RoleDefinitionID string  `json:"roleDefinitionId"`
		PrincipalID      string  `json:"principalId"`
		PrincipalType    string  `json:"principalType"`
		Description      string  `json:"description"`
		Condition        *string `json:"condition"`
	} `json:"properties"`
}

// putRoleAssignment: PUT {scope}/providers/Microsoft.Authorization/
// roleAssignments/{name}. It answers 201, also for the same assignment put
// again, which is what the SDKs accept.
func (s *Server) putRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, ok := parseAuthzPath(r.URL.Path)
	if !ok || p.kind != "roleAssignments" || p.name == "" {
		return noAPI(r)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in roleAssignmentIn
	if err := decodeJSON(body, &in, exampleAssign); err != nil {
		return err
	}
	props := in.Properties
	switch {
	case props == nil || props.RoleDefinitionID == "" || props.PrincipalID == "":
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the role assignment needs properties.roleDefinitionId and properties.principalId, as in %s", exampleAssign)
	case props.Condition != nil && *props.Condition != "":
		// Ignoring a condition would grant more than was asked.
		return keyhold.Errorf(keyhold.CodeNotSupported, "role assignment conditions are not supported: leave properties.condition out")
	}
	a := &keyhold.RoleAssignment{ID: p.name, Scope: p.scope, RoleDefinitionID: props.RoleDefinitionID,
		PrincipalID: props.PrincipalID, PrincipalType: props.PrincipalType}
	if err := s.ARM.Resources.CreateRoleAssignment(r.Context(), a); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, toRoleAssignmentJSON(a))
	return nil
}

// deleteRoleAssignment: DELETE {scope}/providers/Microsoft.Authorization/
// roleAssignments/{name}: 200 with the deleted assignment, or 204 when
// there was none, as ARM answers.
func (s *Server) deleteRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, ok := parseAuthzPath(r.URL.Path)
	if !ok || p.kind != "roleAssignments" || p.name == "" {
		return noAPI(r)
	}
	a, err := s.ARM.Resources.DeleteRoleAssignment(r.Context(), p.scope, p.name)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		w.WriteHeader(nethttp.StatusNoContent)
		return nil
	} else if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toRoleAssignmentJSON(a))
	return nil
}
