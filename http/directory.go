package http

// The directory routes.
//
// Directory (Microsoft Graph's shapes, management audience: Keyhold's
// token endpoint serves only its three scopes, so Graph's own
// https://graph.microsoft.com scope is not accepted):
//
//	POST/GET /v1.0/servicePrincipals                         201 with the secret, once
//	POST/GET /v1.0/users                                     201
//	POST/GET /v1.0/roleManagement/directory/roleAssignments  201
//	DELETE   /v1.0/roleManagement/directory/roleAssignments/{id}   204
//
// Environment membership (BAP admin shape):
//
//	PUT/DELETE …/scopes/admin/environments/{envId}/members/{principalId}   201 new, 200 existing; 204
//	GET        …/scopes/admin/environments/{envId}/members

import (
	"fmt"
	nethttp "net/http"
	"time"

	"github.com/keyhold/keyhold"
)

// Paths and examples of the directory routes.
const (
	graphPrefix      = "/v1.0"
	graphSPs         = graphPrefix + "/servicePrincipals"
	graphUsers       = graphPrefix + "/users"
	graphDirAssigns  = graphPrefix + "/roleManagement/directory/roleAssignments"
	membersPath      = adminEnvPrefix + "/{envId}/members"
	exampleSP        = `{"displayName":"contoso-automation"}`
	exampleUser      = `{"displayName":"Ada","userPrincipalName":"ada@contoso.example","passwordProfile":{"password":"…"}}`
	exampleDirAssign = `{"principalId":"…","roleDefinitionId":"11648597-926c-4cf3-9c36-bcebb0ba8dcc","directoryScopeId":"/"}`
)

// directoryRoutes declares the directory and environment membership
// routes.
func (s *Server) directoryRoutes() []route {
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	r := armRoute
	var routes []route
	if s.ARM.Directory != nil {
		admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
		member := r("PUT", membersPath+"/{principalId}", admin, s.putMember)
		member.Body, member.MaxBody = bodyNone, 0 // the member is named by the path
		routes = append(routes,
			r("POST", graphSPs, mgmt, s.createServicePrincipal),
			r("GET", graphSPs, mgmt, s.listServicePrincipals),
			r("POST", graphUsers, mgmt, s.createUser),
			r("GET", graphUsers, mgmt, s.listUsers),
			r("POST", graphDirAssigns, mgmt, s.assignDirectoryRole),
			r("GET", graphDirAssigns, mgmt, s.listDirectoryRoleAssignments),
			r("DELETE", graphDirAssigns+"/{id}", mgmt, s.removeDirectoryRoleAssignment),
			r("GET", graphSkus, mgmt, s.listLicences),
			r("POST", graphSkus, mgmt, s.addLicence),
			r("DELETE", graphSkus+"/{id}", mgmt, s.removeLicence),
			member,
			r("DELETE", membersPath+"/{principalId}", admin, s.deleteMember),
			r("GET", membersPath, admin, s.listMembers),
		)
	}
	return routes
}

// --- directory (Microsoft Graph shapes) --------------------------------------

type passwordCredentialJSON struct {
	KeyID         string    `json:"keyId,omitempty"`
	SecretText    string    `json:"secretText,omitempty"`
	StartDateTime time.Time `json:"startDateTime"`
	EndDateTime   time.Time `json:"endDateTime"`
}

type servicePrincipalJSON struct {
	ID                   string                   `json:"id"`
	AppID                string                   `json:"appId"`
	DisplayName          string                   `json:"displayName"`
	ServicePrincipalType string                   `json:"servicePrincipalType"`
	PasswordCredentials  []passwordCredentialJSON `json:"passwordCredentials"`
}

func toServicePrincipalJSON(p *keyhold.Principal) servicePrincipalJSON {
	typ := "Application"
	if p.Type == keyhold.PrincipalManagedIdentity {
		typ = "ManagedIdentity"
	}
	return servicePrincipalJSON{ID: p.ID, AppID: p.AppID, DisplayName: p.DisplayName, ServicePrincipalType: typ,
		PasswordCredentials: []passwordCredentialJSON{}}
}

func fromServicePrincipalJSON(j *servicePrincipalJSON, tenantID string) *keyhold.Principal {
	typ := keyhold.PrincipalServicePrincipal
	if j.ServicePrincipalType == "ManagedIdentity" {
		typ = keyhold.PrincipalManagedIdentity
	}
	return &keyhold.Principal{ID: j.ID, TenantID: tenantID, Type: typ, DisplayName: j.DisplayName, AppID: j.AppID}
}

// createServicePrincipal: POST /v1.0/servicePrincipals, 201 with the new
// client secret in passwordCredentials[0].secretText: the only answer
// that ever holds it.
func (s *Server) createServicePrincipal(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		DisplayName string `json:"displayName"`
	}
	if err := decodeJSON(body, &in, exampleSP); err != nil {
		return err
	}
	sp, err := s.ARM.Directory.CreateServicePrincipal(r.Context(), in.DisplayName)
	if err != nil {
		return err
	}
	out := toServicePrincipalJSON(sp.Principal)
	out.PasswordCredentials = []passwordCredentialJSON{{SecretText: sp.Secret, StartDateTime: sp.Principal.CreatedAt.UTC(), EndDateTime: sp.SecretExpires.UTC()}}
	w.Header().Set("Location", s.baseURL(r)+graphSPs+"/"+sp.Principal.ID)
	writeJSON(w, nethttp.StatusCreated, out)
	return nil
}

// listServicePrincipals: GET /v1.0/servicePrincipals.
func (s *Server) listServicePrincipals(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ps, err := s.ARM.Directory.ServicePrincipals(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[servicePrincipalJSON]{Value: make([]servicePrincipalJSON, 0, len(ps))}
	for _, p := range ps {
		out.Value = append(out.Value, toServicePrincipalJSON(p))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

type passwordProfileJSON struct {
	Password string `json:"password,omitempty"`
}

type userJSON struct {
	ID                string               `json:"id"`
	DisplayName       string               `json:"displayName"`
	UserPrincipalName string               `json:"userPrincipalName"`
	AccountEnabled    bool                 `json:"accountEnabled"`
	PasswordProfile   *passwordProfileJSON `json:"passwordProfile,omitempty"`
}

func toUserJSON(u *keyhold.User) userJSON {
	return userJSON{ID: u.ID, DisplayName: u.DisplayName, UserPrincipalName: u.UserPrincipalName, AccountEnabled: true}
}

// createUser: POST /v1.0/users, 201. Without passwordProfile.password a
// password is generated and answered in passwordProfile.password, once.
func (s *Server) createUser(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		DisplayName       string               `json:"displayName"`
		UserPrincipalName string               `json:"userPrincipalName"`
		PasswordProfile   *passwordProfileJSON `json:"passwordProfile"`
	}
	if err := decodeJSON(body, &in, exampleUser); err != nil {
		return err
	}
	pw := ""
	if in.PasswordProfile != nil {
		pw = in.PasswordProfile.Password
	}
	u, err := s.ARM.Directory.CreateUser(r.Context(), in.DisplayName, in.UserPrincipalName, pw)
	if err != nil {
		return err
	}
	out := toUserJSON(u.User)
	if u.Password != "" {
		out.PasswordProfile = &passwordProfileJSON{Password: u.Password}
	}
	w.Header().Set("Location", s.baseURL(r)+graphUsers+"/"+u.User.ID)
	writeJSON(w, nethttp.StatusCreated, out)
	return nil
}

// listUsers: GET /v1.0/users.
func (s *Server) listUsers(w nethttp.ResponseWriter, r *nethttp.Request) error {
	us, err := s.ARM.Directory.Users(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[userJSON]{Value: make([]userJSON, 0, len(us))}
	for _, u := range us {
		out.Value = append(out.Value, toUserJSON(u))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

type directoryRoleAssignmentJSON struct {
	ID               string `json:"id"`
	PrincipalID      string `json:"principalId"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	DirectoryScopeID string `json:"directoryScopeId"`
}

func toDirectoryRoleAssignmentJSON(a *keyhold.DirectoryRoleAssignment) directoryRoleAssignmentJSON {
	return directoryRoleAssignmentJSON{ID: a.ID, PrincipalID: a.PrincipalID, RoleDefinitionID: a.RoleDefinitionID, DirectoryScopeID: a.DirectoryScopeID}
}

func fromDirectoryRoleAssignmentJSON(j *directoryRoleAssignmentJSON) *keyhold.DirectoryRoleAssignment {
	role, _ := keyhold.FindDirectoryRole(j.RoleDefinitionID)
	return &keyhold.DirectoryRoleAssignment{ID: j.ID, PrincipalID: j.PrincipalID, Role: role, RoleDefinitionID: j.RoleDefinitionID, DirectoryScopeID: j.DirectoryScopeID}
}

// assignDirectoryRole: POST /v1.0/roleManagement/directory/roleAssignments,
// 201. roleDefinitionId is the role's template id; only the directory
// scope "/" exists.
func (s *Server) assignDirectoryRole(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in directoryRoleAssignmentJSON
	if err := decodeJSON(body, &in, exampleDirAssign); err != nil {
		return err
	}
	if in.DirectoryScopeID != "" && in.DirectoryScopeID != "/" {
		return keyhold.Errorf(keyhold.CodeNotSupported, "directoryScopeId '%s' is not supported: directory roles apply to the whole tenant, \"/\"", keyhold.Clip(in.DirectoryScopeID))
	}
	if in.PrincipalID == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "principalId is missing: send %s", exampleDirAssign)
	}
	role, ok := keyhold.FindDirectoryRole(in.RoleDefinitionID)
	if !ok {
		return keyhold.Errorf(keyhold.CodeBadRequest, "roleDefinitionId '%s' is not a directory role Keyhold knows: use %s (%s), %s (%s) or %s (%s)", keyhold.Clip(in.RoleDefinitionID),
			keyhold.DirectoryRoleTemplates[keyhold.RoleGlobalAdministrator], keyhold.RoleGlobalAdministrator,
			keyhold.DirectoryRoleTemplates[keyhold.RolePowerPlatformAdministrator], keyhold.RolePowerPlatformAdministrator,
			keyhold.DirectoryRoleTemplates[keyhold.RoleDynamics365Administrator], keyhold.RoleDynamics365Administrator)
	}
	a, err := s.ARM.Directory.AssignDirectoryRole(r.Context(), in.PrincipalID, role)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, toDirectoryRoleAssignmentJSON(a))
	return nil
}

// listDirectoryRoleAssignments: GET …/roleAssignments[?$filter=principalId eq '…'].
func (s *Server) listDirectoryRoleAssignments(w nethttp.ResponseWriter, r *nethttp.Request) error {
	f, err := parseFilter(r, "principalid")
	if err != nil {
		return err
	}
	as, err := s.ARM.Directory.DirectoryRoleAssignments(r.Context(), f.principalID)
	if err != nil {
		return err
	}
	out := listJSON[directoryRoleAssignmentJSON]{Value: make([]directoryRoleAssignmentJSON, 0, len(as))}
	for _, a := range as {
		out.Value = append(out.Value, toDirectoryRoleAssignmentJSON(a))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// removeDirectoryRoleAssignment: DELETE …/roleAssignments/{id}, 204.
func (s *Server) removeDirectoryRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ARM.Directory.RemoveDirectoryRoleAssignment(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// --- environment membership --------------------------------------------------

type memberJSON struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Type       string           `json:"type"`
	Properties memberProperties `json:"properties"`
}

type memberProperties struct {
	EnvironmentID string    `json:"environmentId"`
	PrincipalID   string    `json:"principalId"`
	AddedBy       string    `json:"addedBy"`
	AddedOn       time.Time `json:"addedOn"`
}

func toMemberJSON(m *keyhold.EnvironmentMember) memberJSON {
	return memberJSON{ID: fmt.Sprintf("%s/%s/members/%s", adminEnvPrefix, m.EnvID, m.PrincipalID), Name: m.PrincipalID,
		Type:       "Microsoft.BusinessAppPlatform/scopes/environments/members",
		Properties: memberProperties{EnvironmentID: m.EnvID, PrincipalID: m.PrincipalID, AddedBy: m.AddedBy, AddedOn: m.AddedAt.UTC()}}
}

func fromMemberJSON(j *memberJSON) *keyhold.EnvironmentMember {
	p := j.Properties
	return &keyhold.EnvironmentMember{EnvID: p.EnvironmentID, PrincipalID: p.PrincipalID, AddedBy: p.AddedBy, AddedAt: p.AddedOn}
}

// putMember: PUT …/environments/{envId}/members/{principalId}: 201 for a
// new member, 200 for one already.
func (s *Server) putMember(w nethttp.ResponseWriter, r *nethttp.Request) error {
	m, created, err := s.ARM.Directory.AddEnvironmentMember(r.Context(), r.PathValue("envId"), r.PathValue("principalId"))
	if err != nil {
		return err
	}
	writePut(w, created, toMemberJSON(m))
	return nil
}

// deleteMember: DELETE …/environments/{envId}/members/{principalId}, 204.
func (s *Server) deleteMember(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ARM.Directory.RemoveEnvironmentMember(r.Context(), r.PathValue("envId"), r.PathValue("principalId")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// listMembers: GET …/environments/{envId}/members.
func (s *Server) listMembers(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ms, err := s.ARM.Directory.EnvironmentMembers(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	out := listJSON[memberJSON]{Value: make([]memberJSON, 0, len(ms))}
	for _, m := range ms {
		out.Value = append(out.Value, toMemberJSON(m))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}
