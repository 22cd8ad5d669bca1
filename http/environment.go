package http

import (
	nethttp "net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// environmentJSON is an environment as the BAP admin API shows it.
type environmentJSON struct {
	ID         string                `json:"id"`
	Type       string                `json:"type"`
	Location   string                `json:"location"`
	Name       string                `json:"name"`
	Properties environmentProperties `json:"properties"`
}

type environmentProperties struct {
	TenantID                string                  `json:"tenantId"`
	DisplayName             string                  `json:"displayName"`
	EnvironmentSku          string                  `json:"environmentSku"`
	AzureRegion             string                  `json:"azureRegion"`
	CreatedTime             time.Time               `json:"createdTime"`
	LastModifiedTime        time.Time               `json:"lastModifiedTime"`
	CreatedBy               principalRef            `json:"createdBy"`
	ProvisioningState       string                  `json:"provisioningState"`
	States                  environmentStates       `json:"states"`
	GovernanceConfiguration governanceConfiguration `json:"governanceConfiguration"`
	ProtectionStatus        protectionStatus        `json:"protectionStatus"`
	// EnterprisePolicies names the linked policies; absent when none is.
	EnterprisePolicies *enterprisePolicies `json:"enterprisePolicies,omitempty"`
	// FinanceAndOperations is present for an environment with finance and
	// operations apps (Keyhold's own property).
	FinanceAndOperations *financeAndOperations `json:"financeAndOperations,omitempty"`
	// RestoreOperationID names the restore, copy or reset replacing the
	// environment's data (states.management is then "Restoring"); absent
	// when none runs.
	RestoreOperationID string `json:"restoreOperationId,omitempty"`
	// CMKFlowWarning is spec 004's warning (flows_warning.go); absent
	// unless a customer-key environment has flows on the platform key.
	CMKFlowWarning *cmkFlowWarning `json:"cmkFlowWarning,omitempty"`
	// CreateFlowsInSolutions is the setting "create new flows in
	// solutions" as it applies now (Environment.FlowsInSolutions).
	CreateFlowsInSolutions bool `json:"createFlowsInSolutions"`
}

// financeAndOperations is properties.financeAndOperations: its presence
// makes an environment one with finance and operations apps, and it says
// whether Power Platform integration is enabled on it, which a link to an
// enterprise policy needs.
type financeAndOperations struct {
	PowerPlatformIntegration bool `json:"powerPlatformIntegration"`
}

// toFinanceAndOperations is the properties.financeAndOperations of e; nil
// for an environment without finance and operations apps.
func toFinanceAndOperations(e *keyhold.Environment) *financeAndOperations {
	if !e.FinOps {
		return nil
	}
	return &financeAndOperations{PowerPlatformIntegration: e.PowerPlatformIntegration}
}

type principalRef struct {
	ID string `json:"id"`
}

type environmentStates struct {
	Management stateRef `json:"management"`
	Runtime    stateRef `json:"runtime"`
}

type stateRef struct {
	ID string `json:"id"`
}

type governanceConfiguration struct {
	ProtectionLevel string `json:"protectionLevel"`
}

type protectionStatus struct {
	KeyManagedBy string `json:"keyManagedBy"`
}

// enterprisePolicies is the BAP environment's properties.enterprisePolicies.
type enterprisePolicies struct {
	CustomerManagedKeys *linkedPolicyRef `json:"customerManagedKeys,omitempty"`
}

// linkedPolicyRef is a policy linked to an environment: policyId is the
// GUID that ends its systemId, id its ARM resource id.
type linkedPolicyRef struct {
	PolicyID   string `json:"policyId"`
	Location   string `json:"location"`
	ID         string `json:"id"`
	SystemID   string `json:"systemId"`
	LinkStatus string `json:"linkStatus"`
}

// toEnterprisePolicies is the properties.enterprisePolicies of e; nil while
// no policy is linked.
func toEnterprisePolicies(e *keyhold.Environment) *enterprisePolicies {
	if e.PolicyID == "" && e.PolicySystemID == "" {
		return nil
	}
	ref := &linkedPolicyRef{Location: e.Location, ID: e.PolicyID, SystemID: e.PolicySystemID, LinkStatus: e.LinkStatus}
	// systemId: /regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}
	if s := strings.Split(strings.Trim(e.PolicySystemID, "/"), "/"); len(s) == 6 && strings.EqualFold(s[0], "regions") {
		ref.Location, ref.PolicyID = s[1], s[5]
	}
	return &enterprisePolicies{CustomerManagedKeys: ref}
}

// environmentType is the BAP resource type of an environment.
const environmentType = "Microsoft.BusinessAppPlatform/scopes/environments"

// Management states of an environment: Restoring while a restore, copy or
// reset replaces its data (writes are refused), else Ready.
const (
	managementReady     = "Ready"
	managementRestoring = "Restoring"
)

func toEnvironmentJSON(e *keyhold.Environment) environmentJSON {
	management := managementReady
	if e.RestoreOperationID != "" {
		management = managementRestoring
	}
	return environmentJSON{
		ID:       adminEnvPrefix + "/" + e.ID,
		Type:     environmentType,
		Location: e.Location,
		Name:     e.ID,
		Properties: environmentProperties{
			TenantID:                e.TenantID,
			DisplayName:             e.DisplayName,
			EnvironmentSku:          string(e.SKU),
			AzureRegion:             e.Location,
			CreatedTime:             e.CreatedAt.UTC(),
			LastModifiedTime:        e.UpdatedAt.UTC(),
			CreatedBy:               principalRef{ID: e.CreatedBy},
			ProvisioningState:       "Succeeded",
			States:                  environmentStates{Management: stateRef{ID: management}, Runtime: stateRef{ID: string(e.State)}},
			GovernanceConfiguration: governanceConfiguration{ProtectionLevel: protectionLevel(e.Managed)},
			ProtectionStatus:        protectionStatus{KeyManagedBy: string(e.KeyManagedBy)},
			EnterprisePolicies:      toEnterprisePolicies(e),
			FinanceAndOperations:    toFinanceAndOperations(e),
			RestoreOperationID:      e.RestoreOperationID,
			CMKFlowWarning:          toCMKFlowWarning(e),
			CreateFlowsInSolutions:  e.FlowsInSolutions(),
		},
	}
}

// fromEnvironmentJSON is the client's reverse of toEnvironmentJSON. Fields
// the API does not show (Epoch, Version, EncryptionStatus,
// LastOperationID) stay zero.
func fromEnvironmentJSON(j *environmentJSON) *keyhold.Environment {
	p := &j.Properties
	e := &keyhold.Environment{
		ID:           j.Name,
		TenantID:     p.TenantID,
		DisplayName:  p.DisplayName,
		Location:     j.Location,
		SKU:          keyhold.EnvironmentSKU(p.EnvironmentSku),
		Managed:      strings.EqualFold(p.GovernanceConfiguration.ProtectionLevel, protectionStandard),
		State:        keyhold.RuntimeState(p.States.Runtime.ID),
		KeyManagedBy: keyhold.KeyManagedBy(p.ProtectionStatus.KeyManagedBy),
		CreatedBy:    p.CreatedBy.ID,
		CreatedAt:    p.CreatedTime,
		UpdatedAt:    p.LastModifiedTime,

		RestoreOperationID: p.RestoreOperationID,
		PlatformKeyFlows:   fromCMKFlowWarning(p.CMKFlowWarning),
	}
	// The answer shows the setting as it applies; the client keeps it as
	// set only where that differs from the default, so FlowsInSolutions
	// reads the same on both sides.
	if on := p.CreateFlowsInSolutions; on != e.FlowsInSolutions() {
		e.CreateFlowsInSolutions = &on
	}
	if fo := p.FinanceAndOperations; fo != nil {
		e.FinOps, e.PowerPlatformIntegration = true, fo.PowerPlatformIntegration
	}
	if ep := p.EnterprisePolicies; ep != nil && ep.CustomerManagedKeys != nil {
		cmk := ep.CustomerManagedKeys
		e.PolicyID, e.PolicySystemID, e.LinkStatus = cmk.ID, cmk.SystemID, cmk.LinkStatus
	}
	return e
}

// listJSON is the BAP list shape.
type listJSON[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// createEnvironment: POST /providers/Microsoft.BusinessAppPlatform/environments.
func (s *Server) createEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	e, err := parseEnvironmentCreate(body)
	if err != nil {
		return err
	}
	if err := s.Environments.CreateEnvironment(r.Context(), e); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, toEnvironmentJSON(e))
	return nil
}

// listEnvironments: GET …/scopes/admin/environments.
func (s *Server) listEnvironments(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envs, err := s.Environments.ListEnvironments(r.Context())
	if err != nil {
		return err
	}
	out := listJSON[environmentJSON]{Value: make([]environmentJSON, 0, len(envs))}
	for _, e := range envs {
		out.Value = append(out.Value, toEnvironmentJSON(e))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getEnvironment: GET …/scopes/admin/environments/{envId}.
func (s *Server) getEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	e, err := s.Environments.FindEnvironment(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toEnvironmentJSON(e))
	return nil
}

// patchEnvironment: PATCH …/scopes/admin/environments/{envId}. A body that
// changes nothing answers the environment as it is.
func (s *Server) patchEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	upd, err := parseEnvironmentPatch(body)
	if err != nil {
		return err
	}
	envID := r.PathValue("envId")
	var e *keyhold.Environment
	if upd.DisplayName == nil && upd.Managed == nil && upd.PowerPlatformIntegration == nil && upd.CreateFlowsInSolutions == nil {
		e, err = s.Environments.FindEnvironment(r.Context(), envID)
	} else {
		e, err = s.Environments.UpdateEnvironment(r.Context(), envID, upd)
	}
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toEnvironmentJSON(e))
	return nil
}

// deleteEnvironment: DELETE …/scopes/admin/environments/{envId}.
func (s *Server) deleteEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.Environments.DeleteEnvironment(r.Context(), r.PathValue("envId")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}
