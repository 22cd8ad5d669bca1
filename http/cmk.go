package http

// The customer-managed key lifecycle routes (keyhold.CMKService), in the
// shapes of the Power Platform admin API:
//
//	POST /providers/Microsoft.BusinessAppPlatform/environments/{envId}/enterprisePolicies/Encryption/link     {"SystemId":"…"}  202
//	POST /providers/Microsoft.BusinessAppPlatform/environments/{envId}/enterprisePolicies/Encryption/unlink   {"SystemId":"…"}  202
//	POST …/scopes/admin/environments/{envId}/enterprisePolicies/Encryption/link and …/unlink (the same)
//	GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/{opId}                              200
//	GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/environmentsWithPolicies                       200
//	GET  /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}/keyVersionUsage  200
//
// A link or unlink answers 202 Accepted as soon as the operation is stored,
// with the operation in the body and where to poll it in operation-location
// (and in Location, which the Power Platform Terraform provider reads
// first), and Retry-After: 1. One second, not the real service's longer
// interval, because the custody change itself is one key rewrap that ends
// within a second or two; the re-key that follows reports its progress in
// the operation (progress.done of progress.total), which a client may poll
// as slowly as it likes.

import (
	"context"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Paths and limits of the CMK routes.
const (
	operationsPrefix    = bapPrefix + "/scopes/admin/operations"
	policyLinksPath     = bapPrefix + "/scopes/admin/environmentsWithPolicies"
	armPolicyPrefix     = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies"
	keyVersionUsageName = "keyVersionUsage"
	maxLinkBody         = 16 << 10
	// defaultBAPAPIVersion is the api-version that operation-location
	// names when the request named none (the link API's own).
	defaultBAPAPIVersion = "2019-10-01"
	// operationRetryAfter is the Retry-After, in seconds, of an accepted
	// link or unlink and of a running operation.
	operationRetryAfter = 1
	exampleLink         = `{"SystemId":"/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/4ad5…"}`
)

// cmkRoutes declares the CMK lifecycle routes; none while s.CMK is nil.
func (s *Server) cmkRoutes() []route {
	if s.CMK == nil {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	post := func(pattern string, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		return route{Method: "POST", Pattern: pattern, Auth: admin, Body: bodyJSON, MaxBody: maxLinkBody, Timeout: apiTimeout, Handler: h}
	}
	get := func(pattern string, auth []keyhold.Audience, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		return route{Method: "GET", Pattern: pattern, Auth: auth, Timeout: apiTimeout, Handler: h}
	}
	const (
		bapLink   = bapPrefix + "/environments/{envId}/enterprisePolicies/{policyType}"
		adminLink = adminEnvPrefix + "/{envId}/enterprisePolicies/{policyType}"
	)
	return []route{
		post(bapLink+"/link", s.linkPolicy),
		post(bapLink+"/unlink", s.unlinkPolicy),
		post(adminLink+"/link", s.linkPolicy),
		post(adminLink+"/unlink", s.unlinkPolicy),
		get(operationsPrefix+"/{opId}", admin, s.getOperation),
		get(policyLinksPath, admin, s.listPolicyLinks),
		// The last segment is a wildcard compared without regard to case,
		// because ARM paths match in any case and the router's rewriting
		// (armpath.go) knows only the ARM grammar's fixed segments.
		get(armPolicyPrefix+"/{name}/{action}", mgmt, s.getKeyVersionUsage),
	}
}

// --- link and unlink -----------------------------------------------------------

// linkPolicy: POST …/environments/{envId}/enterprisePolicies/Encryption/link.
func (s *Server) linkPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.startPolicyOperation(w, r, s.CMK.LinkPolicy)
}

// unlinkPolicy: POST …/environments/{envId}/enterprisePolicies/Encryption/unlink.
func (s *Server) unlinkPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.startPolicyOperation(w, r, s.CMK.UnlinkPolicy)
}

// startPolicyOperation checks the policy type and body, then starts the
// operation and answers 202 with where to poll it.
func (s *Server) startPolicyOperation(w nethttp.ResponseWriter, r *nethttp.Request,
	start func(ctx context.Context, envID, systemID string) (*keyhold.Operation, error)) error {
	if pt := r.PathValue("policyType"); !strings.EqualFold(pt, keyhold.PolicyKindEncryption) {
		return keyhold.Errorf(keyhold.CodeNotSupported, "enterprise policy type %q is not supported: Keyhold links %s policies only (…/enterprisePolicies/%s/link)",
			keyhold.Clip(pt), keyhold.PolicyKindEncryption, keyhold.PolicyKindEncryption)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	systemID, err := parseLinkBody(body)
	if err != nil {
		return err
	}
	op, err := start(r.Context(), r.PathValue("envId"), systemID)
	if err != nil {
		return err
	}
	s.acceptOperation(w, r, op)
	return nil
}

// parseLinkBody returns the SystemId of a link or unlink body. The field
// name matches in any case ("SystemId", "systemId"), as encoding/json
// matches names.
func parseLinkBody(body []byte) (string, error) {
	var in struct {
		SystemID *string `json:"SystemId"`
	}
	if err := decodeJSON(body, &in, exampleLink); err != nil {
		return "", err
	}
	if in.SystemID == nil || strings.TrimSpace(*in.SystemID) == "" {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "SystemId is required: send the enterprise policy's properties.systemId, as in %s", exampleLink)
	}
	id := strings.TrimSpace(*in.SystemID)
	if strings.HasPrefix(strings.ToLower(id), "/subscriptions/") {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "SystemId %q is the policy's resource id: send its properties.systemId instead, which looks like /regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}", keyhold.Clip(id))
	}
	return id, nil
}

// acceptOperation answers a started operation as a link does: 202 with the
// operation, where to poll it in operation-location and Location, and
// Retry-After.
func (s *Server) acceptOperation(w nethttp.ResponseWriter, r *nethttp.Request, op *keyhold.Operation) {
	loc := s.operationLocation(r, op.ID)
	h := w.Header()
	h.Set("operation-location", loc)
	h.Set("Location", loc)
	h.Set("Retry-After", strconv.Itoa(operationRetryAfter))
	writeJSON(w, nethttp.StatusAccepted, toOperationJSON(op))
}

// operationLocation is the URL to poll an operation at, with the request's
// api-version (or the link API's).
func (s *Server) operationLocation(r *nethttp.Request, id string) string {
	v := r.URL.Query().Get("api-version")
	if v == "" || len(v) > 32 {
		v = defaultBAPAPIVersion
	}
	return s.baseURL(r) + operationsPrefix + "/" + url.PathEscape(id) + "?api-version=" + url.QueryEscape(v)
}

// --- operations ----------------------------------------------------------------

// operationJSON is an operation as GET …/scopes/admin/operations/{opId}
// shows it. It follows the BAP lifecycle operation (id, type.id, state.id,
// createdDateTime, lastActionDateTime, requestedBy, links), which the Power
// Platform tools decode, and adds what Keyhold knows: kind, step, progress
// and error. status repeats state.id for the Azure SDKs' operation-location
// pollers (which keep polling any status but Succeeded, Failed and
// Canceled), except that a paused operation (Running, its environment
// Locked) has status Paused and a statusMessage that says why. operationId
// repeats name for the BAP's newer operation shape. phase is Keyhold's
// (keyhold.OperationPhase): what a Running operation is doing.
type operationJSON struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	OperationID        string            `json:"operationId"`
	Type               stateRef          `json:"type"`
	Kind               string            `json:"kind"`
	State              stateRef          `json:"state"`
	Status             string            `json:"status"`
	TenantID           string            `json:"tenantId,omitempty"`
	EnvironmentID      string            `json:"environmentId,omitempty"`
	Target             string            `json:"target"`
	Step               string            `json:"step,omitempty"`
	Phase              string            `json:"phase,omitempty"`
	Progress           operationProgress `json:"progress"`
	StatusMessage      string            `json:"statusMessage,omitempty"`
	Error              *errorDetail      `json:"error,omitempty"`
	Links              operationLinks    `json:"links"`
	RequestedBy        principalRef      `json:"requestedBy"`
	CreatedDateTime    time.Time         `json:"createdDateTime"`
	LastActionDateTime time.Time         `json:"lastActionDateTime"`
	FinishedDateTime   *time.Time        `json:"finishedDateTime,omitempty"`
	// Warnings are said in the answer that starts an operation (an
	// unlink: keep the key 30 days), never when it is polled.
	Warnings []string `json:"warnings,omitempty"`
}

type operationProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"` // 0 if unknown
}

type operationLinks struct {
	Self        operationLinkPath  `json:"self"`
	Environment *operationLinkPath `json:"environment,omitempty"`
}

type operationLinkPath struct {
	Path string `json:"path"`
}

func toOperationJSON(op *keyhold.Operation) operationJSON {
	self := operationsPrefix + "/" + op.ID
	j := operationJSON{
		ID:                 self,
		Name:               op.ID,
		OperationID:        op.ID,
		Type:               stateRef{ID: operationTypeID(op.Kind)},
		Kind:               op.Kind,
		State:              stateRef{ID: string(op.State)},
		Status:             string(op.State),
		TenantID:           op.TenantID,
		Target:             op.Target,
		Step:               op.Step,
		Phase:              string(op.Phase),
		Progress:           operationProgress{Done: op.Done, Total: op.Total},
		Links:              operationLinks{Self: operationLinkPath{Path: self}},
		RequestedBy:        principalRef{ID: op.CreatedBy},
		CreatedDateTime:    op.CreatedAt.UTC(),
		LastActionDateTime: op.UpdatedAt.UTC(),
		Warnings:           op.Warnings,
	}
	// Environment ids are GUIDs; other targets (a policy) are resource ids.
	if op.Target != "" && !strings.HasPrefix(op.Target, "/") {
		j.EnvironmentID = op.Target
		j.Links.Environment = &operationLinkPath{Path: adminEnvPrefix + "/" + op.Target}
	}
	switch {
	case operationPaused(op):
		j.Status, j.StatusMessage = "Paused", keyhold.PausedPrefix+op.PhaseReason
	case op.ErrorCode != "" || op.ErrorMsg != "":
		j.Error = &errorDetail{Code: op.ErrorCode, Message: op.ErrorMsg}
	}
	if !op.FinishedAt.IsZero() {
		t := op.FinishedAt.UTC()
		j.FinishedDateTime = &t
	}
	return j
}

// fromOperationJSON is the client's reverse of toOperationJSON.
func fromOperationJSON(j *operationJSON) *keyhold.Operation {
	op := &keyhold.Operation{
		ID:        j.Name,
		TenantID:  j.TenantID,
		Kind:      j.Kind,
		Target:    j.Target,
		State:     keyhold.OperationState(j.State.ID),
		Step:      j.Step,
		Phase:     keyhold.OperationPhase(j.Phase),
		Done:      j.Progress.Done,
		Total:     j.Progress.Total,
		CreatedBy: j.RequestedBy.ID,
		CreatedAt: j.CreatedDateTime,
		UpdatedAt: j.LastActionDateTime,
		Warnings:  j.Warnings,
	}
	if op.ID == "" {
		op.ID = j.OperationID
	}
	if op.State == "" {
		op.State = keyhold.OperationState(j.Status)
	}
	if op.Target == "" {
		op.Target = j.EnvironmentID
	}
	if j.Error != nil {
		op.ErrorCode, op.ErrorMsg = j.Error.Code, j.Error.Message
	} else if j.StatusMessage != "" {
		op.ErrorMsg = j.StatusMessage // paused: as keyhold.Operation.ShowPause shows it
	}
	// The reason of a phase is what the answer shows for it.
	switch op.Phase {
	case keyhold.OperationPaused:
		op.PhaseReason = strings.TrimPrefix(j.StatusMessage, keyhold.PausedPrefix)
	case keyhold.OperationRollingBack:
		op.PhaseReason = op.ErrorMsg
	}
	if j.FinishedDateTime != nil {
		op.FinishedAt = *j.FinishedDateTime
	}
	return op
}

// operationPaused reports whether op is paused, as package ops records it
// (ops.IsPaused, which this package may not import): Running, in phase
// Paused.
func operationPaused(op *keyhold.Operation) bool {
	return op.State == keyhold.OperationRunning && op.Phase == keyhold.OperationPaused
}

// operationTypeID is the BAP type.id of an operation kind: "link" is
// "Link".
func operationTypeID(kind string) string {
	if kind == "" {
		return ""
	}
	return strings.ToUpper(kind[:1]) + kind[1:]
}

// getOperation: GET …/scopes/admin/operations/{opId}. A running operation
// carries Retry-After.
func (s *Server) getOperation(w nethttp.ResponseWriter, r *nethttp.Request) error {
	op, err := s.CMK.GetOperation(r.Context(), r.PathValue("opId"))
	if err != nil {
		return err
	}
	if op.State == keyhold.OperationRunning {
		w.Header().Set("Retry-After", strconv.Itoa(operationRetryAfter))
	}
	writeJSON(w, nethttp.StatusOK, toOperationJSON(op))
	return nil
}

// --- environments with policies ------------------------------------------------

// policyLinkJSON is one row of GET …/scopes/admin/environmentsWithPolicies,
// the admin center's "Environments with policies" tab.
type policyLinkJSON struct {
	EnvironmentID    string `json:"environmentId"`
	DisplayName      string `json:"displayName"`
	Location         string `json:"location"`
	EnvironmentSku   string `json:"environmentSku,omitempty"`
	EnvironmentState string `json:"environmentState"`
	// DisplayState is the state as the admin center words it: Locked is
	// "Environment disabled".
	DisplayState     string             `json:"displayState"`
	KeyManagedBy     string             `json:"keyManagedBy"`
	EncryptionStatus string             `json:"encryptionStatus"`
	LinkStatus       string             `json:"linkStatus,omitempty"`
	Policy           *linkedPolicyJSON  `json:"policy,omitempty"`
	LastOperation    *lastOperationJSON `json:"lastOperation,omitempty"`
	// CMKFlowWarning is spec 004's warning, as on the environment.
	CMKFlowWarning *cmkFlowWarning `json:"cmkFlowWarning,omitempty"`
}

type linkedPolicyJSON struct {
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	SystemID     string             `json:"systemId"`
	Location     string             `json:"location"`
	HealthStatus string             `json:"healthStatus,omitempty"`
	KeyVault     linkedKeyVaultJSON `json:"keyVault"`
}

type linkedKeyVaultJSON struct {
	ID  string        `json:"id"`
	Key linkedKeyJSON `json:"key"`
}

type linkedKeyJSON struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // "": the key's current version
}

type lastOperationJSON struct {
	ID                 string    `json:"id"`
	Kind               string    `json:"kind"`
	State              string    `json:"state"`
	LastActionDateTime time.Time `json:"lastActionDateTime"`
}

// displayState words an environment's runtime state as the admin center
// does.
func displayState(s keyhold.RuntimeState) string {
	switch s {
	case keyhold.StateLocked:
		return "Environment disabled"
	case keyhold.StateAdminMode:
		return "Admin mode"
	}
	return string(s)
}

func toPolicyLinkJSON(l *keyhold.PolicyLink) policyLinkJSON {
	var j policyLinkJSON
	if e := l.Environment; e != nil {
		j = policyLinkJSON{
			EnvironmentID:    e.ID,
			DisplayName:      e.DisplayName,
			Location:         e.Location,
			EnvironmentSku:   string(e.SKU),
			EnvironmentState: string(e.State),
			DisplayState:     displayState(e.State),
			KeyManagedBy:     string(e.KeyManagedBy),
			EncryptionStatus: string(e.EncryptionStatus),
			LinkStatus:       e.LinkStatus,
			CMKFlowWarning:   toCMKFlowWarning(e),
		}
	}
	if p := l.Policy; p != nil {
		j.Policy = &linkedPolicyJSON{
			ID: p.ID(), Name: p.Name, SystemID: p.SystemID, Location: p.Location, HealthStatus: string(p.HealthStatus),
			KeyVault: linkedKeyVaultJSON{ID: p.KeyVaultID, Key: linkedKeyJSON{Name: p.KeyName, Version: p.KeyVersion}},
		}
	}
	if op := l.LastOperation; op != nil {
		j.LastOperation = &lastOperationJSON{ID: op.ID, Kind: op.Kind, State: string(op.State), LastActionDateTime: op.UpdatedAt.UTC()}
	}
	return j
}

// fromPolicyLinkJSON is the client's reverse of toPolicyLinkJSON. The
// environment's policy fields come from the policy when there is one.
func fromPolicyLinkJSON(j *policyLinkJSON) *keyhold.PolicyLink {
	e := &keyhold.Environment{
		ID:               j.EnvironmentID,
		DisplayName:      j.DisplayName,
		Location:         j.Location,
		SKU:              keyhold.EnvironmentSKU(j.EnvironmentSku),
		State:            keyhold.RuntimeState(j.EnvironmentState),
		KeyManagedBy:     keyhold.KeyManagedBy(j.KeyManagedBy),
		EncryptionStatus: keyhold.EncryptionStatus(j.EncryptionStatus),
		LinkStatus:       j.LinkStatus,
		PlatformKeyFlows: fromCMKFlowWarning(j.CMKFlowWarning),
	}
	l := &keyhold.PolicyLink{Environment: e}
	if p := j.Policy; p != nil {
		sub, rg, name, _ := splitPolicyResourceID(p.ID)
		if name == "" {
			name = p.Name
		}
		l.Policy = &keyhold.EnterprisePolicy{
			SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: p.Location, Kind: keyhold.PolicyKindEncryption,
			SystemID: p.SystemID, HealthStatus: keyhold.HealthStatus(p.HealthStatus),
			KeyVaultID: p.KeyVault.ID, KeyName: p.KeyVault.Key.Name, KeyVersion: p.KeyVault.Key.Version,
		}
		e.PolicyID, e.PolicySystemID = p.ID, p.SystemID
	}
	if op := j.LastOperation; op != nil {
		l.LastOperation = &keyhold.Operation{ID: op.ID, Kind: op.Kind, State: keyhold.OperationState(op.State), Target: e.ID, UpdatedAt: op.LastActionDateTime}
		e.LastOperationID = op.ID
	}
	return l
}

// listPolicyLinks: GET …/scopes/admin/environmentsWithPolicies.
func (s *Server) listPolicyLinks(w nethttp.ResponseWriter, r *nethttp.Request) error {
	links, err := s.CMK.PolicyLinks(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[policyLinkJSON]{Value: make([]policyLinkJSON, 0, len(links))}
	for _, l := range links {
		out.Value = append(out.Value, toPolicyLinkJSON(l))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// --- key version usage -----------------------------------------------------------

// keyVersionUsageJSON is one version of a policy's key, as
// …/enterprisePolicies/{name}/keyVersionUsage shows it. The times are left
// out while they are zero (the version is in use, or never was).
type keyVersionUsageJSON struct {
	KeyID               string     `json:"kid"`
	Version             string     `json:"version"`
	Current             bool       `json:"current"`
	LiveEnvironmentKeys int        `json:"liveEnvironmentKeys"`
	Backups             int        `json:"backups"`
	LastUsedAt          *time.Time `json:"lastUsedDateTime,omitempty"`
	SafeToDisableAt     *time.Time `json:"safeToDisableDateTime,omitempty"`
	// RetainedBYOK marks the entry of a legacy BYOK key kept after a
	// migration (issue 14).
	RetainedBYOK *keyhold.RetainedBYOKKey `json:"retainedByokKey,omitempty"`
}

func toKeyVersionUsageJSON(u *keyhold.KeyVersionUsage) keyVersionUsageJSON {
	j := keyVersionUsageJSON{KeyID: u.KeyID, Version: u.Version, Current: u.Current, LiveEnvironmentKeys: u.LiveKeys, Backups: u.Backups, RetainedBYOK: u.RetainedBYOK}
	if !u.LastUsedAt.IsZero() {
		t := u.LastUsedAt.UTC()
		j.LastUsedAt = &t
	}
	if !u.SafeToDisableAt.IsZero() {
		t := u.SafeToDisableAt.UTC()
		j.SafeToDisableAt = &t
	}
	return j
}

func fromKeyVersionUsageJSON(j *keyVersionUsageJSON) *keyhold.KeyVersionUsage {
	u := &keyhold.KeyVersionUsage{KeyID: j.KeyID, Version: j.Version, Current: j.Current, LiveKeys: j.LiveEnvironmentKeys, Backups: j.Backups, RetainedBYOK: j.RetainedBYOK}
	if j.LastUsedAt != nil {
		u.LastUsedAt = *j.LastUsedAt
	}
	if j.SafeToDisableAt != nil {
		u.SafeToDisableAt = *j.SafeToDisableAt
	}
	return u
}

// getKeyVersionUsage: GET /subscriptions/{sub}/resourceGroups/{rg}/providers/
// Microsoft.PowerPlatform/enterprisePolicies/{name}/keyVersionUsage. The
// path is Keyhold's own: the real service has no such report.
func (s *Server) getKeyVersionUsage(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if !strings.EqualFold(r.PathValue("action"), keyVersionUsageName) {
		return keyhold.Errorf(keyhold.CodeNotFound, "no API at GET %s: an enterprise policy has …/%s", keyhold.Clip(r.URL.EscapedPath()), keyVersionUsageName)
	}
	id := policyResourceID(r.PathValue("sub"), r.PathValue("rg"), r.PathValue("name"))
	usage, err := s.CMK.KeyVersionUsage(r.Context(), id)
	if err != nil {
		return err
	}
	out := listJSON[keyVersionUsageJSON]{Value: make([]keyVersionUsageJSON, 0, len(usage))}
	for _, u := range usage {
		out.Value = append(out.Value, toKeyVersionUsageJSON(u))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// policyResourceID is the ARM resource id of an enterprise policy.
func policyResourceID(sub, rg, name string) string {
	p := keyhold.EnterprisePolicy{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return p.ID()
}

// splitPolicyResourceID takes an enterprise policy's ARM resource id apart;
// ok is false if id is not one. Its fixed segments match in any case.
func splitPolicyResourceID(id string) (sub, rg, name string, ok bool) {
	s := strings.Split(strings.Trim(id, "/"), "/")
	if len(s) != 8 || !strings.EqualFold(s[0], "subscriptions") || !strings.EqualFold(s[2], "resourceGroups") ||
		!strings.EqualFold(s[4], "providers") || !strings.EqualFold(s[5], "Microsoft.PowerPlatform") ||
		!strings.EqualFold(s[6], "enterprisePolicies") || s[1] == "" || s[3] == "" || s[7] == "" {
		return "", "", "", false
	}
	return s[1], s[3], s[7], true
}
