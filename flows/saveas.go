package flows

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

var _ keyhold.FlowSaveAsService = (*Service)(nil)

// SaveFlowAs copies a flow under a new id (keyhold.FlowSaveAsService). The
// original is opened wherever it is sealed (the platform key's partition,
// epoch 0, for a flow a link left there), and the copy is written through
// the same path as a new flow, so every rule of a creation applies to it
// (the caller's rights, the definition's checks, cmkWriteRule) and it is
// sealed under the environment's current epoch. Nothing of the original
// changes; a refusal writes nothing.
func (s *Service) SaveFlowAs(ctx context.Context, envID, flowID string, in *keyhold.FlowSaveAs) (*keyhold.Flow, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, err
	}
	if in == nil {
		in = &keyhold.FlowSaveAs{}
	}
	name := strings.TrimSpace(in.DisplayName)
	switch {
	case name == "":
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.displayName is required: name the copy, e.g. {\"properties\":{\"displayName\":\"Orders webhook (CMK)\"}}")
	case len(name) > keyhold.MaxDisplayName:
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "properties.displayName is %d bytes long: use at most %d", len(name), keyhold.MaxDisplayName)
	}
	if err := keyhold.CheckText(keyhold.CodeInvalidRequestContent, "properties.displayName", name); err != nil {
		return nil, err
	}
	rec, err := s.flowRecord(ctx, envID, flowID)
	if err != nil {
		return nil, err
	}
	body, err := s.openAnyFlow(ctx, rec)
	if err != nil {
		return nil, err
	}
	sol := rec.SolutionID
	if in.SolutionID != nil {
		sol = *in.SolutionID
	}
	state := rec.State
	cp := &keyhold.FlowInput{DisplayName: &name, Definition: body.Definition, ConnectionReferences: body.ConnectionReferences, State: &state, SolutionID: &sol}
	return s.writeFlow(ctx, envID, uuid.NewString(), cp, false)
}

// openAnyFlow opens a flow's sealed content under the epoch it records:
// the platform key's partition for epoch 0, the environment key's epoch
// otherwise.
func (s *Service) openAnyFlow(ctx context.Context, rec *keyhold.FlowRecord) (*sealedFlow, error) {
	var pt []byte
	var err error
	if rec.Epoch == keyhold.PlatformEpoch {
		pt, err = s.seal.OpenPlatform(ctx, rec.EnvID, keyhold.StoreFlows, flowItem(rec.ID), rec.Version, rec.Sealed)
	} else {
		pt, err = s.seal.Open(ctx, rec.EnvID, keyhold.StoreFlows, flowItem(rec.ID), rec.Version, rec.Epoch, rec.Sealed)
	}
	if err != nil {
		return nil, err
	}
	var body sealedFlow
	if err := json.Unmarshal(pt, &body); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "flow %s: its stored content is not valid", rec.ID).WithCause(err)
	}
	return &body, nil
}
