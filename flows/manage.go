package flows

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// maxFlowBytes bounds a flow's definition and connection references.
const maxFlowBytes = 1 << 20

// sealedFlow is what a flow's seal holds.
type sealedFlow struct {
	Definition           json.RawMessage `json:"definition"`
	ConnectionReferences json.RawMessage `json:"connectionReferences,omitempty"`
}

// flowDef is an opened flow: its record, content and parsed definition,
// and the environment's current epoch as the check that let it open saw
// it (the epoch a new run's state is sealed under).
type flowDef struct {
	rec     *keyhold.FlowRecord
	body    sealedFlow
	def     *wdl.Definition
	refs    map[string]connRef
	current uint32
}

// connRef is one of a flow's connection references: the connection it
// names.
type connRef struct {
	API            string `json:"apiName"`
	ConnectionName string `json:"connectionName"`
}

// parsed caches parsed definitions by flow, version and seal.
var parsed sync.Map // env/flow/version → *wdl.Definition

// openFlow opens a flow read earlier, checking the environment first in
// a read transaction of its own (loadFlow reads and checks in one).
func (s *Service) openFlow(ctx context.Context, rec *keyhold.FlowRecord) (*flowDef, error) {
	current, err := s.serving(ctx, rec.EnvID)
	if err != nil {
		return nil, err
	}
	return s.openFlowUnder(ctx, rec, current)
}

// openFlowUnder opens a flow; the caller checked the environment and saw
// its epoch current.
func (s *Service) openFlowUnder(ctx context.Context, rec *keyhold.FlowRecord, current uint32) (*flowDef, error) {
	pt, err := s.seal.OpenUnder(ctx, rec.EnvID, keyhold.StoreFlows, flowItem(rec.ID), rec.Version, rec.Epoch, rec.Sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	fd := &flowDef{rec: rec, current: current}
	if err := json.Unmarshal(pt, &fd.body); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "flow %s: its stored content is not valid", rec.ID).WithCause(err)
	}
	if fd.refs, err = parseRefs(fd.body.ConnectionReferences); err != nil {
		return nil, err
	}
	// The seal's digest is in the key too: a flow deleted and created
	// again, or restored from a backup, may come back at a version it
	// had before with other content.
	sum := sha256.Sum256(rec.Sealed)
	k := fmt.Sprintf("%s/%s/%d/%x", rec.EnvID, rec.ID, rec.Version, sum[:8])
	if d, ok := parsed.Load(k); ok {
		fd.def = d.(*wdl.Definition)
		return fd, nil
	}
	if fd.def, err = wdl.Parse(fd.body.Definition); err != nil {
		return nil, err
	}
	parsed.Store(k, fd.def)
	return fd, nil
}

// parseRefs reads connectionReferences: {"<ref>": {"apiName": …,
// "connectionName": …}, …}, as exported flows carry them ("api": {"name"}
// is accepted for apiName).
func parseRefs(raw json.RawMessage) (map[string]connRef, error) {
	out := map[string]connRef{}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return out, nil
	}
	var m map[string]struct {
		connRef
		API struct {
			Name string `json:"name"`
		} `json:"api"`
		Connection struct {
			Name string `json:"name"`
		} `json:"connection"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.connectionReferences must be an object of {\"apiName\":…,\"connectionName\":…} by reference name: %s", keyhold.Clip(err.Error()))
	}
	for name, r := range m {
		ref := r.connRef
		if ref.API == "" {
			ref.API = r.API.Name
		}
		if ref.ConnectionName == "" {
			ref.ConnectionName = r.Connection.Name
		}
		if ref.API == "" || ref.ConnectionName == "" {
			return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.connectionReferences.%s needs apiName and connectionName", keyhold.Clip(name))
		}
		out[name] = ref
	}
	return out, nil
}

func toFlow(fd *flowDef) *keyhold.Flow {
	r := fd.rec
	return &keyhold.Flow{EnvID: r.EnvID, ID: r.ID, DisplayName: r.DisplayName, State: r.State, SolutionID: r.SolutionID,
		Definition: fd.body.Definition, ConnectionReferences: fd.body.ConnectionReferences,
		TriggerName: r.TriggerName, TriggerType: r.TriggerType, TriggerKind: r.TriggerKind,
		CreatedBy: r.CreatedBy, CreatedTime: r.CreatedAt, LastModifiedTime: r.UpdatedAt}
}

// listFlow is a flow in a listing: no definition, nothing opened.
func listFlow(r *keyhold.FlowRecord) *keyhold.Flow {
	return &keyhold.Flow{EnvID: r.EnvID, ID: r.ID, DisplayName: r.DisplayName, State: r.State, SolutionID: r.SolutionID,
		TriggerName: r.TriggerName, TriggerType: r.TriggerType, TriggerKind: r.TriggerKind,
		CreatedBy: r.CreatedBy, CreatedTime: r.CreatedAt, LastModifiedTime: r.UpdatedAt}
}

// PutFlow creates or replaces a flow. The definition is parsed first: a
// bad one is refused (CodeInvalidFlowDefinition, naming the path) and
// nothing is written.
func (s *Service) PutFlow(ctx context.Context, envID, flowID string, in *keyhold.FlowInput) (*keyhold.Flow, error) {
	return s.writeFlow(ctx, envID, flowID, in, false)
}

// PatchFlow changes the fields in is set.
func (s *Service) PatchFlow(ctx context.Context, envID, flowID string, in *keyhold.FlowInput) (*keyhold.Flow, error) {
	return s.writeFlow(ctx, envID, flowID, in, true)
}

func (s *Service) writeFlow(ctx context.Context, envID, flowID string, in *keyhold.FlowInput, patch bool) (*keyhold.Flow, error) {
	id, _, err := s.caller(ctx, envID)
	if err != nil {
		return nil, err
	}
	if err := keyhold.ValidateItemName("flow name", flowID); err != nil {
		return nil, err
	}
	if in == nil {
		in = &keyhold.FlowInput{}
	}
	if len(in.Definition)+len(in.ConnectionReferences) > maxFlowBytes {
		return nil, keyhold.Errorf(keyhold.CodeRequestTooLarge, "the flow's definition and connection references are %d bytes: at most %d", len(in.Definition)+len(in.ConnectionReferences), maxFlowBytes)
	}
	for attempt := 0; ; attempt++ {
		f, err := s.writeFlowOnce(ctx, id, envID, flowID, in, patch)
		if keyhold.ErrorCode(err) == keyhold.CodeConflict && attempt < 3 {
			continue
		}
		return f, err
	}
}

func (s *Service) writeFlowOnce(ctx context.Context, id *keyhold.Identity, envID, flowID string, in *keyhold.FlowInput, patch bool) (*keyhold.Flow, error) {
	var old *keyhold.FlowRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		old, err = tx.Flow(ctx, envID, flowID)
		return err
	})
	if err != nil && keyhold.ErrorCode(err) != keyhold.CodeFlowNotFound {
		return nil, err
	}
	if patch && old == nil {
		return nil, keyhold.Errorf(keyhold.CodeFlowNotFound, "flow %q was not found in environment %s: create it with PUT first", flowID, envID)
	}
	now := s.clock.Now().UTC()
	rec := &keyhold.FlowRecord{EnvID: envID, ID: flowID, State: keyhold.FlowStarted, CreatedBy: id.PrincipalID, CreatedAt: now, Version: 1}
	var body sealedFlow
	if old != nil {
		cur, err := s.openFlow(ctx, old)
		if err != nil {
			return nil, err
		}
		r := *old
		rec = &r
		rec.Version = old.Version + 1
		if patch {
			body = cur.body
		}
	}
	if in.DisplayName != nil {
		rec.DisplayName = *in.DisplayName
	} else if !patch {
		rec.DisplayName = ""
	}
	if in.State != nil {
		if *in.State != keyhold.FlowStarted && *in.State != keyhold.FlowStopped {
			return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.state %q is not valid: use %q or %q", keyhold.Clip(*in.State), keyhold.FlowStarted, keyhold.FlowStopped)
		}
		rec.State = *in.State
	}
	if in.SolutionID != nil {
		rec.SolutionID = *in.SolutionID
	}
	if in.Definition != nil {
		body.Definition = in.Definition
	}
	if in.ConnectionReferences != nil {
		body.ConnectionReferences = in.ConnectionReferences
	}
	if rec.DisplayName == "" {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.displayName is required: name the flow")
	}
	if len(body.Definition) == 0 {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.definition is required: give the flow's Workflow Definition Language JSON")
	}
	def, err := wdl.Parse(body.Definition)
	if err != nil {
		return nil, err
	}
	refs, err := parseRefs(body.ConnectionReferences)
	if err != nil {
		return nil, err
	}
	for _, name := range def.ConnectionRefs() {
		if _, ok := refs[name]; !ok {
			return nil, keyhold.Errorf(keyhold.CodeInvalidFlowDefinition, "the definition uses connection reference %q, which properties.connectionReferences does not name", keyhold.Clip(name))
		}
	}
	if old == nil {
		if rec.SolutionID, err = s.solutionOfNew(ctx, envID, rec.SolutionID); err != nil {
			return nil, err
		}
	}
	tr := def.Trigger()
	if err := s.cmkWriteRule(ctx, envID, old == nil, rec.SolutionID, tr, body.ConnectionReferences); err != nil {
		return nil, err
	}
	rec.TriggerName, rec.TriggerType, rec.TriggerKind = tr.Name, tr.Type, tr.Kind
	rec.UpdatedAt = now
	pt, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	// A flow on the platform partition stays there only while it is in a
	// category; the save that takes it out moves it (fix.go).
	onPlatform := old != nil && old.Epoch == keyhold.PlatformEpoch
	var movedKey *keyhold.FlowKeyRecord
	if onPlatform {
		if onPlatform, err = s.staysOnPlatform(ctx, rec, def); err != nil {
			return nil, err
		}
		if !onPlatform {
			if movedKey, err = s.keyOffPlatform(ctx, envID, flowID); err != nil {
				return nil, err
			}
		}
	}
	if rec.Sealed, rec.Epoch, err = s.sealAt(ctx, envID, keyhold.StoreFlows, flowItem(flowID), rec.Version, onPlatform, pt); err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := refuseWhileMigrating(ctx, tx, envID); err != nil {
			return err
		}
		if err := tx.PutFlow(ctx, rec); err != nil {
			return err
		}
		if movedKey != nil {
			if err := tx.PutFlowKey(ctx, movedKey); err != nil {
				return err
			}
		}
		return s.schedule(ctx, tx, rec, def)
	})
	if err != nil {
		return nil, err
	}
	if old != nil && old.Epoch == keyhold.PlatformEpoch && !onPlatform {
		s.freeParents(ctx, envID) // the parents it kept follow (fix_cascade.go)
	}
	return toFlow(&flowDef{rec: rec, body: body, def: def}), nil
}

// GetFlow returns a flow with its definition.
func (s *Service) GetFlow(ctx context.Context, envID, flowID string) (*keyhold.Flow, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	fd, err := s.loadFlow(ctx, envID, flowID, nil)
	if err != nil {
		return nil, err
	}
	return toFlow(fd), nil
}

func (s *Service) flowRecord(ctx context.Context, envID, flowID string) (rec *keyhold.FlowRecord, err error) {
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		rec, err = readFlow(ctx, tx, envID, flowID)
		return err
	})
	return rec, err
}

// ListFlows lists an environment's flows, without their definitions:
// nothing is opened, so an administrator can list a locked
// environment's flows.
func (s *Service) ListFlows(ctx context.Context, envID string) ([]*keyhold.Flow, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	var recs []*keyhold.FlowRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		recs, err = tx.ListFlows(ctx, envID)
		return err
	})
	out := make([]*keyhold.Flow, 0, len(recs))
	for _, r := range recs {
		out = append(out, listFlow(r))
	}
	return out, err
}

// DeleteFlow deletes a flow with its runs.
func (s *Service) DeleteFlow(ctx context.Context, envID, flowID string) error {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.DeleteFlow(ctx, envID, flowID) })
	if keyhold.ErrorCode(err) == keyhold.CodeFlowNotFound {
		return keyhold.Errorf(keyhold.CodeFlowNotFound, "flow %q was not found in environment %s", keyhold.Clip(flowID), envID)
	}
	return err
}

// SetFlowState starts or stops a flow.
func (s *Service) SetFlowState(ctx context.Context, envID, flowID, state string) (*keyhold.Flow, error) {
	return s.PatchFlow(ctx, envID, flowID, &keyhold.FlowInput{State: &state})
}
