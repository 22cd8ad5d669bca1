package http

// Managed HSMs (issue 18): the Microsoft.KeyVault/managedHSMs resource
// under the resource manager, and each HSM's data plane at
// https://{name}.managedhsm.{domain}[:{port}]/ (keyhold.HSMAddress): the
// key routes of the vault's data plane, served by the HSM's service
// (keysFor), its security domain and its local role assignments. A
// request by an HSM's host is rewritten to /managedhsms/{name}/… (the path
// form, also served); the data plane takes tokens for the Managed HSM
// audience, https://managedhsm.azure.net, which the HSM's challenge makes
// the SDKs ask for.

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// ManagedHSMAPI holds the Managed HSM service. With HSMs nil no Managed
// HSM route is served.
type ManagedHSMAPI struct {
	HSMs keyhold.ManagedHSMService
}

const (
	hsmGroupPath     = kvSubPath + "/resourceGroups/{rg}/providers/Microsoft.KeyVault/managedHSMs"
	hsmDataPrefix    = "/managedhsms/{vault}"
	hsmResourceType  = "Microsoft.KeyVault/managedHSMs"
	hsmDeletedType   = "Microsoft.KeyVault/deletedManagedHSMs"
	roleAssignPath   = "/providers/Microsoft.Authorization/roleAssignments"
	hsmRoleAssignTyp = "Microsoft.Authorization/roleAssignments"
)

// hsmKey marks a request for a Managed HSM's data plane.
type hsmKey struct{}

// hsmScopeKey carries the scope of a role assignment request, the part
// of its path before /providers/Microsoft.Authorization/roleAssignments.
type hsmScopeKey struct{}

// keysFor returns the key data plane a request is for: the HSM's, for a
// request hsmChallenge admitted, else the vault's.
func (s *Server) keysFor(r *nethttp.Request) keyhold.VaultKeys {
	if ok, _ := r.Context().Value(hsmKey{}).(bool); ok {
		return s.ManagedHSM.HSMs
	}
	return s.KeyVault.Vaults
}

// routeHSMByHost rewrites a request whose Host names a Managed HSM to the
// path form /managedhsms/{name}{path}; a role assignment path,
// /{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}], to
// /managedhsms/{name}/roleassignments[/{name}], with the scope in the
// request's context.
func (s *Server) routeHSMByHost(r *nethttp.Request) (*nethttp.Request, bool) {
	if s.ManagedHSM.HSMs == nil {
		return r, false
	}
	name, ok := keyhold.HSMAddress(s.vaultAddress(r)).VaultOfHost(r.Host)
	if !ok {
		return r, false
	}
	path := r.URL.Path
	ctx := context.WithValue(r.Context(), hostFormKey{}, true)
	if i := strings.Index(strings.ToLower(path), strings.ToLower(roleAssignPath)); i >= 0 {
		scope := "/" + strings.Trim(path[:i], "/")
		ctx = context.WithValue(ctx, hsmScopeKey{}, scope)
		path = "/roleassignments" + path[i+len(roleAssignPath):]
	} else if !dataPlanePath(path) && !strings.HasPrefix(path, "/securitydomain/") {
		return r, false
	}
	r2 := r.WithContext(ctx)
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path, r2.URL.RawPath = "/managedhsms/"+name+path, ""
	return r2, true
}

// managedHSMRoutes declares the Managed HSM routes.
func (s *Server) managedHSMRoutes() []route {
	if s.ManagedHSM.HSMs == nil {
		return nil
	}
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	arm := func(method, pattern string, body bodyKind, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: pattern, Auth: mgmt, Body: body, Timeout: apiTimeout, Handler: h}
		if body == bodyJSON {
			rt.MaxBody = maxVaultBody
		}
		return rt
	}
	routes := []route{
		arm("PUT", hsmGroupPath+"/{name}", bodyJSON, s.putHSM),
		arm("GET", hsmGroupPath+"/{name}", bodyNone, s.getHSM),
		arm("DELETE", hsmGroupPath+"/{name}", bodyNone, s.deleteHSM),
		arm("GET", hsmGroupPath, bodyNone, s.listHSMs),
		arm("GET", kvProviderPath+"/managedHSMs", bodyNone, s.listHSMs),
		arm("GET", kvProviderPath+"/deletedManagedHSMs", bodyNone, s.listDeletedHSMs),
		arm("GET", kvProviderPath+"/locations/{location}/deletedManagedHSMs/{name}", bodyNone, s.getDeletedHSM),
		arm("POST", kvProviderPath+"/locations/{location}/deletedManagedHSMs/{name}/purge", bodyNone, s.purgeDeletedHSM),
	}
	hsmAud := []keyhold.Audience{keyhold.AudienceManagedHSM}
	// The key routes are the vault's, under the HSM's prefix.
	for _, rt := range s.keyVaultRoutes() {
		if rest, ok := strings.CutPrefix(rt.Pattern, kvDataPrefix); ok {
			rt.Pattern, rt.Auth, rt.Challenge = hsmDataPrefix+rest, hsmAud, s.hsmChallenge
			routes = append(routes, rt)
		}
	}
	hsm := func(method, pattern string, body bodyKind, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: hsmDataPrefix + pattern, Auth: hsmAud, Challenge: s.hsmChallenge, Body: body, Timeout: apiTimeout, Handler: h}
		if body == bodyJSON {
			rt.MaxBody = maxKeyBody
		}
		return rt
	}
	return append(routes,
		hsm("POST", "/securitydomain/download", bodyJSON, s.downloadSecurityDomain),
		hsm("POST", "/securitydomain/upload", bodyJSON, s.uploadSecurityDomain),
		hsm("GET", "/roleassignments", bodyNone, s.listHSMRoleAssignments),
		hsm("GET", "/roleassignments/{name}", bodyNone, s.getHSMRoleAssignment),
		hsm("PUT", "/roleassignments/{name}", bodyJSON, s.putHSMRoleAssignment),
		hsm("DELETE", "/roleassignments/{name}", bodyNone, s.deleteHSMRoleAssignment),
	)
}

// hsmChallenge is vaultChallenge for a Managed HSM: it refuses an
// unsupported api-version or an unknown HSM, names the HSM's tenant and
// resource in the challenge, and marks the request as the HSM's.
func (s *Server) hsmChallenge(r *nethttp.Request) (*nethttp.Request, string, error) {
	if err := checkKeyVaultAPIVersion(r); err != nil {
		return r, "", err
	}
	name := r.PathValue("vault")
	h, err := s.ManagedHSM.HSMs.LookupManagedHSM(r.Context(), name)
	if keyhold.IsNotFound(err) {
		return r, "", keyhold.Errorf(keyhold.CodeVaultNotFound,
			"Managed HSM %q was not found: check the name in the URL (%s); a deleted HSM must be recovered first",
			keyhold.Clip(name), keyhold.HSMAddress(s.vaultAddress(r)).VaultURI("{name}"))
	} else if err != nil {
		return r, "", err
	}
	resource := string(keyhold.AudienceManagedHSM)
	if byHost(r) {
		resource = keyhold.ChallengeResource(r.Host)
	}
	challenge := fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.baseURL(r), h.TenantID, resource)
	ctx := context.WithValue(r.Context(), vaultKey{}, h.AsVault())
	ctx = context.WithValue(ctx, hsmKey{}, true)
	ctx = keyhold.NewOriginContext(ctx, originOf(r))
	return r.WithContext(ctx), challenge, nil
}

// hsmJSON is a Managed HSM (armkeyvault.ManagedHsm).
type hsmJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        hsmSKUJSON        `json:"sku"`
	Properties hsmPropsJSON      `json:"properties"`
}

type hsmSKUJSON struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type hsmPropsJSON struct {
	TenantID                  string   `json:"tenantId"`
	InitialAdminObjectIDs     []string `json:"initialAdminObjectIds"`
	HSMURI                    string   `json:"hsmUri"`
	EnableSoftDelete          bool     `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays int      `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection     bool     `json:"enablePurgeProtection"`
	ProvisioningState         string   `json:"provisioningState"`
	StatusMessage             string   `json:"statusMessage"`
	PublicNetworkAccess       string   `json:"publicNetworkAccess"`
	SecurityDomainProperties  struct {
		ActivationStatus        string `json:"activationStatus"`
		ActivationStatusMessage string `json:"activationStatusMessage"`
	} `json:"securityDomainProperties"`
}

func (s *Server) toHSMJSON(r *nethttp.Request, h *keyhold.ManagedHSM) hsmJSON {
	out := hsmJSON{ID: h.ID(), Name: h.Name, Type: hsmResourceType, Location: h.Location, Tags: map[string]string{},
		SKU: hsmSKUJSON{Family: "B", Name: h.SKU}}
	p := &out.Properties
	p.TenantID, p.InitialAdminObjectIDs, p.HSMURI = h.TenantID, h.InitialAdminObjectIDs, keyhold.HSMAddress(s.vaultAddress(r)).VaultURI(h.Name)+"/"
	p.EnableSoftDelete, p.SoftDeleteRetentionInDays, p.EnablePurgeProtection = true, h.SoftDeleteRetentionDays, h.EnablePurgeProtection
	p.ProvisioningState, p.StatusMessage, p.PublicNetworkAccess = "Succeeded", "The Managed HSM is provisioned and ready to use.", "Enabled"
	sd := &p.SecurityDomainProperties
	if h.Activated() {
		sd.ActivationStatus, sd.ActivationStatusMessage = keyhold.HSMActive, "Your HSM has been activated and can be used for cryptographic operations."
	} else {
		sd.ActivationStatus, sd.ActivationStatusMessage = keyhold.HSMNotActivated,
			"Your HSM is provisioned but not activated: download its security domain (POST "+p.HSMURI+"securitydomain/download) to activate it."
	}
	return out
}

type hsmInJSON struct {
	Location *string `json:"location"`
	SKU      *struct {
		Family string `json:"family"`
		Name   string `json:"name"`
	} `json:"sku"`
	Tags       map[string]*string `json:"tags"`
	Properties *struct {
		TenantID                  *string  `json:"tenantId"`
		InitialAdminObjectIDs     []string `json:"initialAdminObjectIds"`
		EnableSoftDelete          *bool    `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays *int     `json:"softDeleteRetentionInDays"`
		EnablePurgeProtection     *bool    `json:"enablePurgeProtection"`
		CreateMode                *string  `json:"createMode"`
	} `json:"properties"`
}

const exampleHSMPut = `{"location": "westeurope", "sku": {"family": "B", "name": "Standard_B1"}, "properties": {"tenantId": "{tenant}", "initialAdminObjectIds": ["{object id}"], "softDeleteRetentionInDays": 90, "enablePurgeProtection": true}}`

// putHSM: PUT …/managedHSMs/{name} creates, updates or, with
// properties.createMode "recover", recovers an HSM: 200 with
// provisioningState Succeeded, so that an SDK's poller completes at once.
func (s *Server) putHSM(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in hsmInJSON
	if err := decodeJSON(body, &in, exampleHSMPut); err != nil {
		return err
	}
	h := &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	recover := false
	if in.Location != nil {
		h.Location = *in.Location
	}
	if in.SKU != nil {
		h.SKU = in.SKU.Name
	}
	if p := in.Properties; p != nil {
		if p.CreateMode != nil {
			switch {
			case strings.EqualFold(*p.CreateMode, createModeRecover):
				recover = true
			case strings.EqualFold(*p.CreateMode, createModeDefault):
			default:
				return keyhold.Errorf(keyhold.CodeBadRequest, "properties.createMode %q is not valid: use %q, or %q to recover a deleted Managed HSM",
					keyhold.Clip(*p.CreateMode), createModeDefault, createModeRecover)
			}
		}
		if p.EnableSoftDelete != nil && !*p.EnableSoftDelete {
			return keyhold.Errorf(keyhold.CodeBadRequest, "properties.enableSoftDelete can't be false: soft delete is always on; omit it")
		}
		if p.TenantID != nil {
			h.TenantID = *p.TenantID
		}
		h.InitialAdminObjectIDs = p.InitialAdminObjectIDs
		if p.SoftDeleteRetentionInDays != nil {
			h.SoftDeleteRetentionDays = *p.SoftDeleteRetentionInDays
		}
		if p.EnablePurgeProtection != nil {
			h.EnablePurgeProtection = *p.EnablePurgeProtection
		}
	}
	// 200 for a new HSM too: armkeyvault's ManagedHsmsClient takes 200 or
	// 202 from this PUT, not 201.
	if _, err := s.ManagedHSM.HSMs.PutManagedHSM(r.Context(), h, recover); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, s.toHSMJSON(r, h))
	return nil
}

// getHSM: GET …/managedHSMs/{name}.
func (s *Server) getHSM(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	h, err := s.ManagedHSM.HSMs.GetManagedHSM(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, s.toHSMJSON(r, h))
	return nil
}

// deleteHSM: DELETE …/managedHSMs/{name} soft-deletes the HSM: 200, or
// 204 when there is none.
func (s *Server) deleteHSM(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	err := s.ManagedHSM.HSMs.DeleteManagedHSM(r.Context(), sub, rg, name)
	switch keyhold.ErrorCode(err) {
	case "":
		w.WriteHeader(nethttp.StatusOK)
	case keyhold.CodeResourceNotFound:
		w.WriteHeader(nethttp.StatusNoContent)
	default:
		return err
	}
	return nil
}

// listHSMs: GET …/managedHSMs of a group or a subscription.
func (s *Server) listHSMs(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, _ := armIDs(r)
	hs, err := s.ManagedHSM.HSMs.ListManagedHSMs(r.Context(), sub, rg)
	if err != nil {
		return err
	}
	out := listJSON[hsmJSON]{Value: make([]hsmJSON, 0, len(hs))}
	for _, h := range hs {
		out.Value = append(out.Value, s.toHSMJSON(r, h))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// deletedHSMJSON is a soft-deleted HSM (armkeyvault.DeletedManagedHsm).
type deletedHSMJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		MhsmID                 string            `json:"mhsmId"`
		Location               string            `json:"location"`
		DeletionDate           string            `json:"deletionDate"`
		ScheduledPurgeDate     string            `json:"scheduledPurgeDate"`
		PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
		Tags                   map[string]string `json:"tags"`
	} `json:"properties"`
}

func toDeletedHSMJSON(h *keyhold.ManagedHSM) deletedHSMJSON {
	var out deletedHSMJSON
	out.ID = "/subscriptions/" + h.SubscriptionID + "/providers/Microsoft.KeyVault/locations/" + h.Location + "/deletedManagedHSMs/" + h.Name
	out.Name, out.Type = h.Name, hsmDeletedType
	p := &out.Properties
	p.MhsmID, p.Location, p.PurgeProtectionEnabled, p.Tags = h.ID(), h.Location, h.EnablePurgeProtection, map[string]string{}
	p.DeletionDate, p.ScheduledPurgeDate = h.DeletedAt.UTC().Format(time.RFC3339), h.ScheduledPurgeAt.UTC().Format(time.RFC3339)
	return out
}

// listDeletedHSMs: GET /subscriptions/{sub}/providers/Microsoft.KeyVault/deletedManagedHSMs.
func (s *Server) listDeletedHSMs(w nethttp.ResponseWriter, r *nethttp.Request) error {
	hs, err := s.ManagedHSM.HSMs.ListDeletedManagedHSMs(r.Context(), r.PathValue("sub"))
	if err != nil {
		return err
	}
	out := listJSON[deletedHSMJSON]{Value: make([]deletedHSMJSON, 0, len(hs))}
	for _, h := range hs {
		out.Value = append(out.Value, toDeletedHSMJSON(h))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getDeletedHSM: GET …/locations/{location}/deletedManagedHSMs/{name}.
func (s *Server) getDeletedHSM(w nethttp.ResponseWriter, r *nethttp.Request) error {
	h, err := s.ManagedHSM.HSMs.GetDeletedManagedHSM(r.Context(), r.PathValue("sub"), r.PathValue("location"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toDeletedHSMJSON(h))
	return nil
}

// purgeDeletedHSM: POST …/locations/{location}/deletedManagedHSMs/{name}/purge;
// done when it answers 200.
func (s *Server) purgeDeletedHSM(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.ManagedHSM.HSMs.PurgeDeletedManagedHSM(r.Context(), r.PathValue("sub"), r.PathValue("location"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusOK)
	return nil
}

// sdCertJSON is one share holder's key in a download request: a
// certificate (x5c, base64 DER, as Azure takes them) or an RSA JWK (n, e,
// base64url).
type sdCertJSON struct {
	Kid string   `json:"kid"`
	X5C []string `json:"x5c"`
	Kty string   `json:"kty"`
	N   string   `json:"n"`
	E   string   `json:"e"`
}

type sdDownloadInJSON struct {
	Certificates []sdCertJSON `json:"certificates"`
	Required     int          `json:"required"`
}

// sdFileJSON is the security domain file (the download's "value").
type sdFileJSON struct {
	Version  string        `json:"version"`
	HSM      string        `json:"hsm"`
	Required int           `json:"required"`
	Shares   []sdShareJSON `json:"shares"`
}

type sdShareJSON struct {
	Kid   string `json:"kid,omitempty"`
	X     int    `json:"x"`
	Value string `json:"value"` // base64url
}

const exampleSDDownload = `{"certificates": [{"x5c": ["{base64 DER}"]}, {"x5c": ["…"]}, {"x5c": ["…"]}], "required": 2}`

// sdKey reads one share holder's key: a certificate's RSA public key
// (kid: the certificate's SHA-256 thumbprint) or a JWK's.
func sdKey(i int, c sdCertJSON) (keyhold.SecurityDomainKey, error) {
	bad := func(why string) error {
		return keyhold.Errorf(keyhold.CodeBadParameter, "certificates[%d] %s: give {\"x5c\": [\"<base64 DER certificate with an RSA key>\"]} or an RSA JWK {\"kty\": \"RSA\", \"n\": …, \"e\": …}", i, why)
	}
	if len(c.X5C) > 0 {
		der, err := base64.StdEncoding.DecodeString(c.X5C[0])
		if err != nil {
			return keyhold.SecurityDomainKey{}, bad(fmt.Sprintf("x5c[0] %q is not base64", keyhold.Clip(c.X5C[0])))
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return keyhold.SecurityDomainKey{}, bad("x5c[0] is not a DER certificate")
		}
		rk, isRSA := cert.PublicKey.(*rsa.PublicKey)
		if !isRSA {
			return keyhold.SecurityDomainKey{}, bad("holds no RSA public key")
		}
		sum := sha256.Sum256(der)
		return keyhold.SecurityDomainKey{KID: hex.EncodeToString(sum[:]), N: rk.N.Bytes(), E: rk.E}, nil
	}
	if !strings.EqualFold(c.Kty, "RSA") || c.N == "" || c.E == "" {
		return keyhold.SecurityDomainKey{}, bad("is neither a certificate nor an RSA JWK")
	}
	n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.N, "="))
	e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.E, "="))
	if err1 != nil || err2 != nil || len(e) > 4 {
		return keyhold.SecurityDomainKey{}, bad("has n or e that is not base64url")
	}
	kid := c.Kid
	if kid == "" {
		sum := sha256.Sum256(n)
		kid = hex.EncodeToString(sum[:])
	}
	return keyhold.SecurityDomainKey{KID: kid, N: n, E: int(new(big.Int).SetBytes(e).Int64())}, nil
}

// downloadSecurityDomain: POST /securitydomain/download activates the HSM
// and answers 200 {"value": "<security domain file, JSON>"}.
func (s *Server) downloadSecurityDomain(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in sdDownloadInJSON
	if err := decodeKeyVault(r, &in, exampleSDDownload); err != nil {
		return err
	}
	req := keyhold.SecurityDomainRequest{Quorum: in.Required}
	for i, c := range in.Certificates {
		k, err := sdKey(i, c)
		if err != nil {
			return err
		}
		req.Keys = append(req.Keys, k)
	}
	sd, err := s.ManagedHSM.HSMs.DownloadSecurityDomain(r.Context(), r.PathValue("vault"), req)
	if err != nil {
		return err
	}
	file := sdFileJSON{Version: sd.Version, HSM: sd.HSM, Required: sd.Quorum}
	for _, sh := range sd.Shares {
		file.Shares = append(file.Shares, sdShareJSON{Kid: sh.KID, X: sh.X, Value: b64url(sh.Value)})
	}
	b, err := json.Marshal(file)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, map[string]string{"value": string(b)})
	return nil
}

const exampleSDUpload = `{"shares": [{"x": 1, "value": "{base64url decrypted share}"}, {"x": 3, "value": "…"}]}`

// uploadSecurityDomain: POST /securitydomain/upload restores a security
// domain into a new HSM from a quorum of decrypted shares and activates
// it: 200 {"status": "Success"}.
func (s *Server) uploadSecurityDomain(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in struct {
		Shares []sdShareJSON `json:"shares"`
	}
	if err := decodeKeyVault(r, &in, exampleSDUpload); err != nil {
		return err
	}
	shares := make([]keyhold.SecurityDomainShare, len(in.Shares))
	for i, sh := range in.Shares {
		v, err := fromB64URL(fmt.Sprintf("shares[%d].value", i), sh.Value)
		if err != nil {
			return err
		}
		shares[i] = keyhold.SecurityDomainShare{X: sh.X, Value: v}
	}
	err := s.ManagedHSM.HSMs.UploadSecurityDomain(r.Context(), r.PathValue("vault"), shares)
	for _, sh := range shares {
		clear(sh.Value)
	}
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, map[string]string{"status": "Success"})
	return nil
}

// hsmRoleAssignmentJSON is a local role assignment (azadmin/rbac.RoleAssignment).
type hsmRoleAssignmentJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		Scope            string `json:"scope"`
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
	} `json:"properties"`
}

func toHSMRoleAssignmentJSON(a *keyhold.HSMRoleAssignment) hsmRoleAssignmentJSON {
	var out hsmRoleAssignmentJSON
	out.ID, out.Name, out.Type = a.Scope+roleAssignPath+"/"+a.Name, a.Name, hsmRoleAssignTyp
	out.Properties.Scope, out.Properties.RoleDefinitionID, out.Properties.PrincipalID = a.Scope, a.RoleDefinitionID, a.PrincipalID
	return out
}

func hsmScope(r *nethttp.Request) string {
	if s, ok := r.Context().Value(hsmScopeKey{}).(string); ok {
		return s
	}
	if s := r.URL.Query().Get("scope"); s != "" {
		return s
	}
	return "/"
}

const exampleRoleAssignment = `{"properties": {"roleDefinitionId": "/Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/21dbd100-6940-42c2-9190-5d6cb909625b", "principalId": "{object id}"}}`

// putHSMRoleAssignment: PUT /{scope}/providers/Microsoft.Authorization/roleAssignments/{name}: 201.
func (s *Server) putHSMRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var in struct {
		Properties *struct {
			RoleDefinitionID string `json:"roleDefinitionId"`
			PrincipalID      string `json:"principalId"`
		} `json:"properties"`
	}
	if err := decodeKeyVault(r, &in, exampleRoleAssignment); err != nil {
		return err
	}
	if in.Properties == nil {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the role assignment has no properties: send %s", exampleRoleAssignment)
	}
	a, err := s.ManagedHSM.HSMs.PutHSMRoleAssignment(r.Context(), r.PathValue("vault"), &keyhold.HSMRoleAssignment{
		Name: r.PathValue("name"), Scope: hsmScope(r), RoleDefinitionID: in.Properties.RoleDefinitionID, PrincipalID: in.Properties.PrincipalID})
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, toHSMRoleAssignmentJSON(a))
	return nil
}

// getHSMRoleAssignment: GET …/roleAssignments/{name}.
func (s *Server) getHSMRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	a, err := s.ManagedHSM.HSMs.GetHSMRoleAssignment(r.Context(), r.PathValue("vault"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toHSMRoleAssignmentJSON(a))
	return nil
}

// listHSMRoleAssignments: GET /{scope}/providers/Microsoft.Authorization/roleAssignments.
func (s *Server) listHSMRoleAssignments(w nethttp.ResponseWriter, r *nethttp.Request) error {
	as, err := s.ManagedHSM.HSMs.ListHSMRoleAssignments(r.Context(), r.PathValue("vault"), hsmScope(r))
	if err != nil {
		return err
	}
	out := listJSON[hsmRoleAssignmentJSON]{Value: make([]hsmRoleAssignmentJSON, 0, len(as))}
	for _, a := range as {
		out.Value = append(out.Value, toHSMRoleAssignmentJSON(a))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// deleteHSMRoleAssignment: DELETE …/roleAssignments/{name}: 200 with the
// assignment removed.
func (s *Server) deleteHSMRoleAssignment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	a, err := s.ManagedHSM.HSMs.DeleteHSMRoleAssignment(r.Context(), r.PathValue("vault"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toHSMRoleAssignmentJSON(a))
	return nil
}
