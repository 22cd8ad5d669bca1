package keyhold

import (
	"context"
	"time"
)

// EnvironmentSealer seals the items of an environment's stores for a
// service outside platform (flows, issue 15), so that it never holds an
// environment key itself: platform.Sealer implements it over the custody
// core.
//
// Seal seals under the environment's current key epoch and says which; Open
// takes the epoch an item was sealed under (reads work across every epoch
// whose wrapped key is still kept). The additional data binds environment,
// store, item id and version, so a ciphertext moved to another item or
// replayed as another version fails to open. Both refuse with
// CodeEnvironmentLocked while the environment is Locked (and
// CodeEnvironmentDisabled while it is not Enabled): a locked environment's
// flows neither run nor read their history.
//
// SealPlatform and OpenPlatform seal under the platform key's (MMK)
// partition of (environment, store): an HKDF derivation of the MMK, not the
// environment key. Spec 004 keeps non-OAuth connections' credentials there:
// they stay under the MMK when the environment is linked to a customer key,
// and they open while the environment is locked (nothing runs then, but an
// administrator may still list and delete them).
//
// Serving refuses as Seal does (CodeEnvironmentLocked,
// CodeEnvironmentDisabled) and otherwise does nothing: flows kept on the
// platform partition at a link (issue 16) are sealed with SealPlatform,
// which doesn't check the state, yet a locked or disabled environment
// must stop them too (spec 004: the environment itself is disabled), so
// the flows package asks Serving before it seals or opens one of theirs.
//
// ServingIn and SealUnder split Seal for the engine's saves of a run's
// state (issue 15's throughput): ServingIn refuses as Serving does, but
// reads the environment in the caller's own write transaction and returns
// its current epoch; SealUnder seals under a given epoch (PlatformEpoch:
// the platform partition) without reading the state at all. A caller that
// seals with SealUnder must check ServingIn, and that the epoch is still
// current, in the transaction that writes the ciphertext: the check then
// costs no transaction of its own, and a lock that commits before that
// write stops it.
//
// OpenUnder is Open's counterpart for the trigger and the engine's claim:
// it opens an item sealed under epoch (PlatformEpoch: the platform
// partition) without reading the environment. A caller must have checked
// ServingIn, in a transaction that committed, before it calls OpenUnder:
// the trigger checks in the read that loads the flow, the engine in the
// transaction that claims the run, so neither costs a transaction of its
// own, and nothing is opened unless a check passed.
type EnvironmentSealer interface {
	Seal(ctx context.Context, envID, store, itemID string, version uint64, plaintext []byte) (ciphertext []byte, epoch uint32, err error)
	Open(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, ciphertext []byte) ([]byte, error)
	SealPlatform(ctx context.Context, envID, store, itemID string, version uint64, plaintext []byte) ([]byte, error)
	OpenPlatform(ctx context.Context, envID, store, itemID string, version uint64, ciphertext []byte) ([]byte, error)
	Serving(ctx context.Context, envID string) error
	ServingIn(ctx context.Context, tx Tx, envID string) (epoch uint32, err error)
	SealUnder(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, plaintext []byte) ([]byte, error)
	OpenUnder(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, ciphertext []byte) ([]byte, error)
}

// PlatformEpoch is the epoch an item sealed by SealPlatform records: no
// environment key epoch is 0.
const PlatformEpoch = 0

// Flow states, as Power Automate names them.
const (
	FlowStarted = "Started"
	FlowStopped = "Stopped"
)

// Flow run statuses. Waiting: queued, not yet claimed by an engine (or
// paused, e.g. by a lock, and waiting to be claimed again). Running, and
// the terminal ones, as the definition language names them.
const (
	RunWaiting   = "Waiting"
	RunRunning   = "Running"
	RunSucceeded = "Succeeded"
	RunFailed    = "Failed"
	RunCancelled = "Cancelled"
	RunSkipped   = "Skipped" // a scheduled slot not run: the environment was locked
)

// FlowRecord is a cloud flow as the store holds it. Its definition and
// connection references are sealed (StoreFlows, item flowItemID); the rest
// is what the admin views list without opening anything. Version starts at
// 1 and grows by one with each write, as a row's.
type FlowRecord struct {
	EnvID       string
	ID          string
	DisplayName string
	State       string // FlowStarted or FlowStopped
	SolutionID  string // "" for a flow outside any solution
	TriggerName string
	TriggerType string // "Request", "Recurrence", "OpenApiConnectionWebhook"
	TriggerKind string // a Request trigger's kind ("Http", "Button", …)
	CreatedBy   string // the principal that created it
	Epoch       uint32
	Version     uint64
	Sealed      []byte
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// FlowRunRecord is one run of a flow. State (the run's whole state:
// trigger outputs, actions' inputs and outputs, variables) is sealed in
// StoreRuns. A run is executed by whichever engine holds its lease
// (LeaseOwner until LeaseUntil), as operations are: an engine killed
// mid-run leaves a lease that expires, and another claims the run and
// resumes it from State.
type FlowRunRecord struct {
	EnvID       string
	FlowID      string
	ID          string
	Status      string
	TriggerName string
	ParentRunID string // the parent's run, for a child flow's run
	Depth       int    // 0 for a top-level run; a child's is its parent's + 1
	StartedAt   time.Time
	EndedAt     time.Time // zero until terminal
	LeaseOwner  string
	LeaseUntil  time.Time
	Epoch       uint32
	// Version counts every write of the record (a claim, a lease's
	// renewal, a status); StateVersion only the writes of Sealed, and is
	// the version the seal binds, so a lease can move while the
	// environment is locked and nothing can be sealed.
	Version      uint64
	StateVersion uint64
	Sealed       []byte
	UpdatedAt    time.Time
}

// Terminal says whether the run has finished.
func (r *FlowRunRecord) Terminal() bool {
	switch r.Status {
	case RunSucceeded, RunFailed, RunCancelled, RunSkipped:
		return true
	}
	return false
}

// FlowRunFilter selects runs, newest first.
type FlowRunFilter struct {
	EnvID  string
	FlowID string // "" for every flow of the environment
	Limit  int
}

// FlowSchedule is a recurrence's cursor: the slot it fires next, and the
// last one fired (or skipped). An engine claims a slot by moving NextSlot
// on in a transaction that only succeeds if NextSlot is still what it
// read, so a slot fires once across replicas.
type FlowSchedule struct {
	EnvID    string
	FlowID   string
	NextSlot time.Time
	LastSlot time.Time
}

// Connection kinds and where their credentials are sealed.
const (
	ConnectionOAuth    = "oauth"    // a Keyhold principal's token: environment key, StoreConnections
	ConnectionNonOAuth = "nonoauth" // an API key or basic credentials: platform key partition
)

// ConnectionRecord is a connection of an environment (to an API such as
// "shared_commondataserviceforapps" or "shared_http"). Credentials are
// sealed: under the environment key for OAuth connections, under the
// platform key's partition (Epoch PlatformEpoch) for non-OAuth ones.
type ConnectionRecord struct {
	EnvID       string
	API         string
	Name        string
	DisplayName string
	Kind        string // ConnectionOAuth or ConnectionNonOAuth
	PrincipalID string // an OAuth connection acts as this principal
	CreatedBy   string
	Epoch       uint32
	Version     uint64
	Sealed      []byte
	CreatedAt   time.Time
}

// FlowKeyRecord is the signing key of a flow's request trigger callback
// URLs, sealed in StoreFlows. Regenerating it writes the next version,
// and every URL signed with the previous one stops working.
type FlowKeyRecord struct {
	EnvID     string
	FlowID    string
	Epoch     uint32
	Version   uint64
	Sealed    []byte
	CreatedAt time.Time
}

// FlowTx is the part of a store transaction that holds flows, their runs,
// schedules, callback keys and connections. Lookups of a missing item
// return CodeFlowNotFound, CodeFlowRunNotFound or CodeConnectionNotFound;
// an unknown environment is CodeEnvironmentNotFound. Put methods write
// only if the stored version is the record's Version-1 (0: none yet), as
// PutRow, and otherwise return CodeConflict.
type FlowTx interface {
	PutFlow(ctx context.Context, f *FlowRecord) error
	Flow(ctx context.Context, envID, id string) (*FlowRecord, error)
	// ListFlows lists an environment's flows by id.
	ListFlows(ctx context.Context, envID string) ([]*FlowRecord, error)
	// DeleteFlow removes a flow with its runs, schedule and callback key.
	DeleteFlow(ctx context.Context, envID, id string) error

	PutFlowRun(ctx context.Context, r *FlowRunRecord) error
	FlowRun(ctx context.Context, envID, flowID, id string) (*FlowRunRecord, error)
	ListFlowRuns(ctx context.Context, f FlowRunFilter) ([]*FlowRunRecord, error)
	// RunnableFlowRuns lists runs, of any environment, oldest first, that
	// are Waiting or Running with a lease that has expired by now: those
	// an engine may claim (by a PutFlowRun that sets its lease).
	RunnableFlowRuns(ctx context.Context, now time.Time, limit int) ([]*FlowRunRecord, error)
	// ActiveFlowRuns counts an environment's runs (of one flow, or all
	// if flowID is "") that are Running with a lease that holds at now.
	ActiveFlowRuns(ctx context.Context, envID, flowID string, now time.Time) (int, error)
	// DeleteFlowRunsBefore deletes at most limit terminal runs that ended
	// before t (retention) and says how many.
	DeleteFlowRunsBefore(ctx context.Context, t time.Time, limit int) (int, error)
	// FlowRunsOffEpoch lists at most limit runs of an environment whose
	// state is sealed under an epoch other than epoch (a re-key's walk).
	FlowRunsOffEpoch(ctx context.Context, envID string, epoch uint32, limit int) ([]*FlowRunRecord, error)
	// FlowRunsOfFlowOffEpoch is FlowRunsOffEpoch for one flow: a re-key
	// that keeps some flows on the platform partition (epoch 0) and moves
	// the others walks each flow's runs to where its flow goes.
	FlowRunsOfFlowOffEpoch(ctx context.Context, envID, flowID string, epoch uint32, limit int) ([]*FlowRunRecord, error)

	// PutFlowSchedule inserts or replaces a flow's schedule;
	// ClaimFlowSlot moves it from the slot next to s, and returns
	// CodeConflict if the stored NextSlot is no longer next.
	PutFlowSchedule(ctx context.Context, s *FlowSchedule) error
	ClaimFlowSlot(ctx context.Context, s *FlowSchedule, next time.Time) error
	// DueFlowSchedules lists schedules whose NextSlot is at or before now.
	DueFlowSchedules(ctx context.Context, now time.Time, limit int) ([]*FlowSchedule, error)
	DeleteFlowSchedule(ctx context.Context, envID, flowID string) error

	PutFlowKey(ctx context.Context, k *FlowKeyRecord) error
	FlowKey(ctx context.Context, envID, flowID string) (*FlowKeyRecord, error)

	PutConnection(ctx context.Context, c *ConnectionRecord) error
	Connection(ctx context.Context, envID, api, name string) (*ConnectionRecord, error)
	ListConnections(ctx context.Context, envID string) ([]*ConnectionRecord, error)
	DeleteConnection(ctx context.Context, envID, api, name string) error

	// ReplaceFlows replaces every flow of an environment (with their
	// runs, schedules and callback keys) and every connection by the
	// given records, written as they are, versions included (a restore).
	ReplaceFlows(ctx context.Context, envID string, set *FlowSet) error
	// EnvFlowSet reads them all, as stored (a backup): flows by id, keys
	// and schedules by flow, connections by api and name.
	EnvFlowSet(ctx context.Context, envID string) (*FlowSet, error)

	// FlowEpochCounts counts an environment's flows, runs and
	// connections by the epoch each is sealed under (issue 16), ordered
	// by store then epoch; a store with nothing is absent.
	FlowEpochCounts(ctx context.Context, envID string) ([]FlowEpochCount, error)
}

// The item ids flows' seals bind: the flows package seals with them and
// the re-key (platform) moves the items to a new epoch with them.
func FlowItemID(flowID string) string           { return "flow/" + flowID }
func FlowKeyItemID(flowID string) string        { return "key/" + flowID }
func FlowRunItemID(flowID, runID string) string { return "run/" + flowID + "/" + runID }
func ConnectionItemID(api, name string) string  { return api + "/" + name }

// FlowSet is an environment's flows, their callback keys and schedules,
// and its connections, as ReplaceFlows writes them.
type FlowSet struct {
	Flows       []*FlowRecord
	Keys        []*FlowKeyRecord
	Schedules   []*FlowSchedule
	Connections []*ConnectionRecord
}
