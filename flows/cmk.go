package flows

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

var _ keyhold.FlowCMKService = (*Service)(nil)

// PlatformFlows lists the environment's flows that stay on the platform
// key under a customer-managed key (spec 004's table, Classify), each with
// its category, reason and fix, by flow id. It opens every flow's
// definition (the trigger and child flows are sealed), so it answers
// CodeEnvironmentLocked for a locked environment. Platform administrators
// only: it is the admin's view of the whole environment.
func (s *Service) PlatformFlows(ctx context.Context, envID string) ([]*keyhold.PlatformFlow, error) {
	if err := s.platformAdmin(ctx, envID); err != nil {
		return nil, err
	}
	var recs []*keyhold.FlowRecord
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		recs, err = tx.ListFlows(ctx, envID)
		return err
	}); err != nil {
		return nil, err
	}
	shapes := make([]FlowShape, 0, len(recs))
	for _, r := range recs {
		fd, err := s.openFlow(ctx, r)
		if err != nil {
			return nil, err
		}
		shapes = append(shapes, FlowShape{ID: r.ID, DisplayName: r.DisplayName, SolutionID: r.SolutionID,
			Trigger: fd.def.Trigger(), Children: fd.def.ChildFlows()})
	}
	stay := Classify(shapes)
	out := make([]*keyhold.PlatformFlow, 0, len(stay))
	for _, p := range stay {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *keyhold.PlatformFlow) int { return strings.Compare(a.FlowID, b.FlowID) })
	return out, nil
}

// EpochCounts counts the environment's flows, runs and connections by the
// epoch each is sealed under, from the store in one statement: what the
// per-environment coverage report shows for the flow stores (it maps an
// epoch to its root key). Nothing is opened, so it answers for a locked
// environment too. Platform administrators only, as the report.
func (s *Service) EpochCounts(ctx context.Context, envID string) ([]keyhold.FlowEpochCount, error) {
	if err := s.platformAdmin(ctx, envID); err != nil {
		return nil, err
	}
	var out []keyhold.FlowEpochCount
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		out, err = tx.FlowEpochCounts(ctx, envID)
		return err
	})
	return out, err
}

// platformAdmin checks that the caller is a platform administrator of the
// environment's tenant (another tenant's environment is not found).
func (s *Service) platformAdmin(ctx context.Context, envID string) error {
	id, _, err := s.caller(ctx, envID)
	if err != nil {
		return err
	}
	return s.store.View(ctx, func(tx keyhold.Tx) error {
		roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
		if err != nil {
			return err
		}
		for _, r := range roles {
			if r.IsPlatformAdmin() {
				return nil
			}
		}
		return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not see which flows of environment %s stay on the platform key: only a platform administrator of tenant %s may; ask one to run it, or to assign you the role", id.PrincipalID, envID, id.TenantID)
	})
}

// cmkWriteRule enforces spec 004's known limitations in an environment
// linked to a customer-managed key (environments without a policy are not
// affected):
//   - a new flow outside any solution with a Power Apps trigger (v1 or v2)
//     can't be referenced from an app there, so creating one is refused,
//     saying how to put it in a solution (it only gets here with the
//     setting "create new flows in solutions" turned off: solutions.go). Flows that already exist may
//     still be saved (switching v1 to v2 is a fix);
//   - a Copilot Skills trigger whose connection references run as the
//     invoking user ("runtimeSource": "invoker") is not supported under a
//     customer key: saving one is refused, saying to embed the connection.
func (s *Service) cmkWriteRule(ctx context.Context, envID string, creating bool, solutionID string, tr wdl.Trigger, refs json.RawMessage) error {
	powerApps := creating && solutionID == "" && tr.Type == "Request" && (tr.Kind == "PowerApp" || tr.Kind == "PowerAppV2")
	invoker := ""
	if tr.Type == "Request" && tr.Kind == "Skills" {
		invoker = invokerRef(refs)
	}
	if !powerApps && invoker == "" {
		return nil
	}
	var env *keyhold.Environment
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		env, err = tx.Environment(ctx, envID)
		return err
	}); err != nil {
		return err
	}
	switch {
	case env.PolicyID == "":
		return nil
	case powerApps:
		return keyhold.Errorf(keyhold.CodeNotSupported, "environment %s is protected by a customer-managed key, where a flow outside any solution with a Power Apps trigger (%s) can't be referenced from an app: create it in a solution (set properties.solutionId), add an existing flow to a solution first, or turn on the environment setting \"create new flows in solutions\" (PATCH properties.createFlowsInSolutions true, or keyhold env update %s --create-flows-in-solutions=true), which puts new flows in solution %q", envID, keyhold.Clip(tr.Kind), envID, keyhold.DefaultSolutionID)
	}
	return keyhold.Errorf(keyhold.CodeNotSupported, "environment %s is protected by a customer-managed key, where a Copilot Skills trigger can't run with the invoking user's connection (connection reference %q has runtimeSource \"invoker\"): embed the connection instead (remove runtimeSource, or set it to \"embedded\")", envID, keyhold.Clip(invoker))
}

// invokerRef is the name of the first connection reference (by name) that
// runs as the invoking user, "" if none or if refs is not an object (the
// write's own parsing reports that).
func invokerRef(refs json.RawMessage) string {
	var m map[string]struct {
		RuntimeSource string `json:"runtimeSource"`
	}
	if json.Unmarshal(refs, &m) != nil {
		return ""
	}
	names := make([]string, 0, len(m))
	for n, r := range m {
		if strings.EqualFold(r.RuntimeSource, "invoker") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
