package keyhold

import (
	"time"
)

// Store names: the HKDF info that separates the keys of an environment's
// stores, and part of every item's additional data. Changing one makes every
// item of that store unreadable, so they are fixed forever.
const (
	StoreRows  = "rows"
	StoreFiles = "files"
	StoreAudit = "audit"
	StoreFlows = "flows"
	// StoreRuns holds flow runs' state (trigger bodies, action inputs and
	// outputs, variables) and StoreConnections flows' connections'
	// credentials (issue 15).
	StoreRuns        = "runs"
	StoreConnections = "connections"
)

// Limits on data-plane input.
const (
	MaxRowBytes  = 1 << 20 // a row's JSON document
	MaxNameBytes = 128     // a table, row or file name
)

// The names are checked byte by byte rather than with a regular
// expression: every data-plane request checks two, twice (the HTTP layer
// and the service), and the regexp engine was 2 % of a GET's CPU over
// HTTPS (issue 12). TestNamesAsRegexp holds them to the expressions in
// the comments.

// validTableName: ^[A-Za-z][A-Za-z0-9_]{0,63}$.
func validTableName(name string) bool {
	if len(name) == 0 || len(name) > 64 || !isASCIILetter(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isASCIILetter(c) && !isASCIIDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// validItemName: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
func validItemName(name string) bool {
	if len(name) == 0 || len(name) > 128 || !isASCIILetter(name[0]) && !isASCIIDigit(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isASCIILetter(c) && !isASCIIDigit(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isASCIIDigit(c byte) bool  { return '0' <= c && c <= '9' }

// ValidateTableName checks a table name: a letter, then up to 63 letters,
// digits or underscores.
func ValidateTableName(name string) error {
	if !validTableName(name) {
		return Errorf(CodeInvalidName, "table name %q is not valid: use a letter followed by up to 63 letters, digits or underscores", name)
	}
	return nil
}

// ValidateItemName checks a row id or file name: a letter or digit, then up
// to 127 letters, digits, dots, underscores or hyphens.
func ValidateItemName(kind, name string) error {
	if !validItemName(name) {
		return Errorf(CodeInvalidName, "%s %q is not valid: use a letter or digit followed by up to 127 letters, digits, '.', '_' or '-'", kind, name)
	}
	return nil
}

// RowRecord is a row as the store holds it: ciphertext only. Version starts
// at 1 and grows by one with each write; it is bound into the ciphertext, so
// an older ciphertext can't be passed off as the current one.
type RowRecord struct {
	EnvID      string
	Table      string
	ID         string
	Epoch      uint32
	Version    uint64
	Ciphertext []byte
	UpdatedAt  time.Time
}

// RowFilter selects rows of one environment in (table, id) order, for
// re-encryption jobs that walk an environment.
type RowFilter struct {
	EnvID string
	// After resumes a walk: only rows after (AfterTable, AfterID) are listed.
	AfterTable string
	AfterID    string
	// Epoch, if non-zero, selects only rows sealed under that epoch.
	Epoch uint32
	// Table, if set, selects only that table's rows.
	Table string
	Limit int
}

// FileRecord is a file as the store holds it. The ciphertext is a stream
// kept in numbered chunks under Generation; writing a file writes a new
// generation and then swaps the record to it in one transaction, so a failed
// upload never replaces a good file.
type FileRecord struct {
	EnvID      string
	Name       string
	Generation string
	Epoch      uint32
	Version    uint64
	Size       int64 // plaintext bytes
	Chunks     int
	UpdatedAt  time.Time
}

// FileUpload marks a generation being written, so that an upload abandoned
// by a crash can be found and its chunks removed.
type FileUpload struct {
	EnvID      string
	Generation string
	StartedAt  time.Time
}

// AuditEntry records one control-plane or data-plane change: who, what,
// when, and the result. It never holds customer data or key material.
type AuditEntry struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"time"`
	TenantID string    `json:"tenantId"`
	ActorID  string    `json:"actorId"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	EnvID    string    `json:"environmentId,omitempty"`
	Result   string    `json:"result"`
	Detail   string    `json:"detail,omitempty"`
	// Withheld says Target and Detail are sealed under the environment's
	// key and could not be opened for this read (the environment is
	// locked, or its key unreachable): see AuditSealed.
	Withheld bool `json:"withheld,omitempty"`
	// Epoch, Version and Sealed are an environment entry's seal as the
	// store holds it: Target and Detail sealed under the audit store key
	// of the environment's epoch Epoch, bound to the environment, the
	// entry's id and Version. Sealed is nil for an entry in clear.
	Epoch   uint32 `json:"-"`
	Version uint64 `json:"-"`
	Sealed  []byte `json:"-"`
}

// AuditSealed reports whether an action's entries belong to the
// environment's own audit, sealed under its key: the data plane's (rows
// and files), whose targets name the customer's tables, rows and files.
// Every other entry, environment lifecycle and custody included, is the
// platform's log, in clear: the platform reads it itself (a lock's
// recorded reason, the change feed) when the environment's key is gone.
func AuditSealed(action string) bool {
	for _, pre := range AuditSealedActions() {
		if len(action) > len(pre) && action[:len(pre)] == pre {
			return true
		}
	}
	return false
}

// AuditSealedActions returns the action prefixes of AuditSealed.
func AuditSealedActions() []string { return []string{"row.", "file."} }

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	TenantID string
	EnvID    string
	BeforeID int64 // page: entries with a smaller ID
	// AfterID, if not 0, selects the entries with a greater ID, oldest
	// first: a reader following the log as it grows (a negative AfterID
	// follows it from its first entry).
	AfterID int64
	// ActionPrefixes, if set, selects the entries whose action starts with
	// one of them (letters, digits and dots only).
	ActionPrefixes []string
	// Epoch, if not 0, selects the entries sealed under that epoch;
	// Plain selects the entries of AuditSealedActions still in clear
	// (written before Keyhold sealed them).
	Epoch uint32
	Plain bool
	Limit int
}
