package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Key rotation: the rotation policy (validated as Key Vault does) and the
// scheduler that honours its Rotate action.

// Lifetime action types.
const (
	ActionRotate = "Rotate"
	ActionNotify = "Notify"
)

// Rotation policy limits, as Key Vault has them.
const (
	MinRotationDays = 7  // a Rotate (or Notify) at least 7 days after creation and before expiry
	MinExpiryDays   = 28 // a policy's expiryTime
)

// DefaultNotifyBeforeExpiry is the trigger of the policy a key has when
// none was set.
const DefaultNotifyBeforeExpiry = "P30D"

// Duration is an ISO 8601 duration, as Key Vault's rotation policies use
// ("P90D", "P1Y2M", "PT48H"). Years, months, weeks and days are calendar
// units, added with time.AddDate; hours, minutes and seconds are exact.
type Duration struct {
	Years, Months, Days int
	Clock               time.Duration
	text                string
}

// ParseDuration parses PnYnMnWnDTnHnMnS, each part optional but at least
// one present, with non-negative integer amounts. Anything else is
// CodeBadParameter.
func ParseDuration(s string) (Duration, error) {
	bad := keyhold.Errorf(keyhold.CodeBadParameter,
		"%q is not an ISO 8601 duration: write e.g. P90D (90 days), P3M (3 months), P1Y10D (1 year and 10 days) or PT48H (48 hours)", s)
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return Duration{}, bad
	}
	d := Duration{text: s}
	date, clock, hasClock := strings.Cut(rest, "T")
	if hasClock && clock == "" {
		return Duration{}, bad
	}
	parse := func(part, units string, set func(unit byte, n int) error) error {
		last := -1
		for part != "" {
			i := strings.IndexFunc(part, func(r rune) bool { return r < '0' || r > '9' })
			if i <= 0 {
				return bad
			}
			n, err := strconv.Atoi(part[:i])
			if err != nil || n > 100000 {
				return bad
			}
			u := strings.IndexByte(units, part[i])
			if u <= last { // unknown unit, or out of order, or repeated
				return bad
			}
			last = u
			if err := set(units[u], n); err != nil {
				return err
			}
			part = part[i+1:]
		}
		return nil
	}
	if err := parse(date, "YMWD", func(u byte, n int) error {
		switch u {
		case 'Y':
			d.Years = n
		case 'M':
			d.Months = n
		case 'W':
			d.Days += 7 * n
		case 'D':
			d.Days += n
		}
		return nil
	}); err != nil {
		return Duration{}, err
	}
	if err := parse(clock, "HMS", func(u byte, n int) error {
		unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}[u]
		d.Clock += time.Duration(n) * unit
		return nil
	}); err != nil {
		return Duration{}, err
	}
	return d, nil
}

// String returns the duration as it was written.
func (d Duration) String() string { return d.text }

// AddTo returns t + d.
func (d Duration) AddTo(t time.Time) time.Time {
	return t.AddDate(d.Years, d.Months, d.Days).Add(d.Clock)
}

// SubtractFrom returns t - d.
func (d Duration) SubtractFrom(t time.Time) time.Time {
	return t.Add(-d.Clock).AddDate(-d.Years, -d.Months, -d.Days)
}

// atLeastDays reports whether d, counted from ref, lasts at least days
// days.
func (d Duration) atLeastDays(ref time.Time, days int) bool {
	return !d.AddTo(ref).Before(ref.AddDate(0, 0, days))
}

// DefaultRotationPolicy is the policy of a key that has none: a Notify 30
// days before expiry, no rotation and no expiry.
func DefaultRotationPolicy() *keyhold.RotationPolicy {
	return &keyhold.RotationPolicy{LifetimeActions: []keyhold.LifetimeAction{{Action: ActionNotify, TimeBeforeExpiry: DefaultNotifyBeforeExpiry}}}
}

// ValidateRotationPolicy checks p as Key Vault does, counting calendar
// durations from ref, and returns it normalized (action names spelt
// Rotate and Notify). Rules: each action is Rotate or Notify, at most one
// of each, with exactly one trigger; Notify is triggered before expiry; a
// Rotate comes at least 7 days after creation, and at least 7 days before
// the expiry if the policy sets one; a timeBeforeExpiry trigger of Rotate
// needs the policy's expiryTime; expiryTime is at least 28 days. Any
// violation is CodeBadParameter.
func ValidateRotationPolicy(p *keyhold.RotationPolicy, ref time.Time) (*keyhold.RotationPolicy, error) {
	bad := func(format string, args ...any) error {
		return keyhold.Errorf(keyhold.CodeBadParameter, format, args...)
	}
	if p == nil {
		return nil, bad("the rotation policy is missing")
	}
	out := &keyhold.RotationPolicy{ExpiryTime: p.ExpiryTime, LifetimeActions: []keyhold.LifetimeAction{}}
	var expiry *Duration
	if p.ExpiryTime != "" {
		d, err := ParseDuration(p.ExpiryTime)
		if err != nil {
			return nil, bad("attributes.expiryTime: %s", keyhold.ErrorMessage(err))
		}
		if !d.atLeastDays(ref, MinExpiryDays) {
			return nil, bad("attributes.expiryTime is %s: it must be at least %d days (P%dD)", p.ExpiryTime, MinExpiryDays, MinExpiryDays)
		}
		expiry = &d
	}
	seen := map[string]bool{}
	for i, a := range p.LifetimeActions {
		field := fmt.Sprintf("lifetimeActions[%d]", i)
		switch {
		case strings.EqualFold(a.Action, ActionRotate):
			a.Action = ActionRotate
		case strings.EqualFold(a.Action, ActionNotify):
			a.Action = ActionNotify
		default:
			return nil, bad("%s.action.type %q is not valid: use Rotate or Notify", field, a.Action)
		}
		if seen[a.Action] {
			return nil, bad("the rotation policy has more than one %s action: give at most one Rotate and one Notify", a.Action)
		}
		seen[a.Action] = true
		if (a.TimeAfterCreate == "") == (a.TimeBeforeExpiry == "") {
			return nil, bad("%s.trigger must set exactly one of timeAfterCreate and timeBeforeExpiry", field)
		}
		if a.TimeAfterCreate != "" {
			if a.Action == ActionNotify {
				return nil, bad("%s: a Notify action is triggered by timeBeforeExpiry, not timeAfterCreate", field)
			}
			d, err := ParseDuration(a.TimeAfterCreate)
			if err != nil {
				return nil, bad("%s.trigger.timeAfterCreate: %s", field, keyhold.ErrorMessage(err))
			}
			if !d.atLeastDays(ref, MinRotationDays) {
				return nil, bad("%s.trigger.timeAfterCreate is %s: rotation must come at least %d days after creation", field, a.TimeAfterCreate, MinRotationDays)
			}
			if expiry != nil && d.AddTo(ref).AddDate(0, 0, MinRotationDays).After(expiry.AddTo(ref)) {
				return nil, bad("%s.trigger.timeAfterCreate is %s: with expiryTime %s, rotation must come at least %d days before expiry",
					field, a.TimeAfterCreate, p.ExpiryTime, MinRotationDays)
			}
		} else {
			d, err := ParseDuration(a.TimeBeforeExpiry)
			if err != nil {
				return nil, bad("%s.trigger.timeBeforeExpiry: %s", field, keyhold.ErrorMessage(err))
			}
			if !d.atLeastDays(ref, MinRotationDays) {
				return nil, bad("%s.trigger.timeBeforeExpiry is %s: it must be at least %d days", field, a.TimeBeforeExpiry, MinRotationDays)
			}
			if a.Action == ActionRotate && expiry == nil {
				return nil, bad("%s: a Rotate action triggered by timeBeforeExpiry needs the policy's expiryTime", field)
			}
			if expiry != nil && d.SubtractFrom(expiry.AddTo(ref)).Before(ref.AddDate(0, 0, MinRotationDays)) {
				return nil, bad("%s.trigger.timeBeforeExpiry is %s: with expiryTime %s it would fire less than %d days after creation",
					field, a.TimeBeforeExpiry, p.ExpiryTime, MinRotationDays)
			}
		}
		out.LifetimeActions = append(out.LifetimeActions, a)
	}
	return out, nil
}

// rotationDue returns when p's Rotate action falls due for the version
// cur, and false if it never does (no Rotate action, or a trigger before
// an expiry that cur doesn't have).
func rotationDue(p *keyhold.RotationPolicy, cur *keyhold.KeyVersion) (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	for _, a := range p.LifetimeActions {
		if a.Action != ActionRotate {
			continue
		}
		if a.TimeAfterCreate != "" {
			d, err := ParseDuration(a.TimeAfterCreate)
			if err != nil {
				return time.Time{}, false
			}
			return d.AddTo(cur.CreatedAt), true
		}
		d, err := ParseDuration(a.TimeBeforeExpiry)
		if err != nil || cur.Expires.IsZero() {
			return time.Time{}, false
		}
		return d.SubtractFrom(cur.Expires), true
	}
	return time.Time{}, false
}

// GetRotationPolicy returns a key's rotation policy (the default, a Notify
// 30 days before expiry with no expiry, if none was set, as Key Vault does).
func (s *Keys) GetRotationPolicy(ctx context.Context, vault, name string) (*keyhold.RotationPolicy, error) {
	var out *keyhold.RotationPolicy
	err := s.keyOp(ctx, opGetRotationPolicy, vault, name, func(c *call) error {
		return s.store.View(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opGetRotationPolicy, vault, name)
			if err != nil {
				return err
			}
			k, err := s.liveKey(ctx, tx, v.Name, name)
			if err != nil {
				return err
			}
			out = k.RotationPolicy
			if out == nil {
				out = DefaultRotationPolicy()
			}
			return nil
		})
	})
	return out, err
}

// SetRotationPolicy validates and sets a key's rotation policy: at most one
// Rotate and one Notify action, rotation at least 7 days after creation or
// before expiry, and an expiry of at least 28 days (see
// ValidateRotationPolicy). A policy with no actions and no expiry resets
// the key to the default policy. A refused policy changes nothing.
func (s *Keys) SetRotationPolicy(ctx context.Context, vault, name string, p *keyhold.RotationPolicy) (*keyhold.RotationPolicy, error) {
	var out *keyhold.RotationPolicy
	err := s.keyOp(ctx, opSetRotationPolicy, vault, name, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opSetRotationPolicy, vault, name)
			if err != nil {
				return err
			}
			k, err := s.liveKey(ctx, tx, v.Name, name)
			if err != nil {
				return err
			}
			now := s.now()
			np, err := ValidateRotationPolicy(p, now)
			if err != nil {
				return err
			}
			if len(np.LifetimeActions) == 0 && np.ExpiryTime == "" {
				k.RotationPolicy, out = nil, DefaultRotationPolicy()
				c.detail = "reset to the default policy"
			} else {
				np.CreatedAt, np.UpdatedAt = now, now
				if k.RotationPolicy != nil && !k.RotationPolicy.CreatedAt.IsZero() {
					np.CreatedAt = k.RotationPolicy.CreatedAt
				}
				k.RotationPolicy, out = np, np
				c.detail = policySummary(np)
			}
			k.UpdatedAt = now
			if err := s.putKey(ctx, tx, k); err != nil {
				return err
			}
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}

func policySummary(p *keyhold.RotationPolicy) string {
	var parts []string
	for _, a := range p.LifetimeActions {
		if a.TimeAfterCreate != "" {
			parts = append(parts, a.Action+" "+a.TimeAfterCreate+" after creation")
		} else {
			parts = append(parts, a.Action+" "+a.TimeBeforeExpiry+" before expiry")
		}
	}
	if p.ExpiryTime != "" {
		parts = append(parts, "expiry "+p.ExpiryTime)
	}
	return strings.Join(parts, ", ")
}

// RunRotation rotates every key whose rotation policy's Rotate action is
// due at the clock's now, and returns how many it rotated. A key is
// rotated once per due date: the new version restarts its clock. Replicas
// may run it at once; a key that another rotated meanwhile is skipped. It
// keeps going past a failure and returns every error it met.
func (s *Keys) RunRotation(ctx context.Context) (int, error) {
	now := s.now()
	type due struct {
		k   *keyhold.Key
		cur *keyhold.KeyVersion
	}
	var work []due
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		ks, err := tx.KeysWithRotationPolicy(ctx)
		if err != nil {
			return err
		}
		for _, k := range ks {
			v, err := s.vault(ctx, tx, k.VaultName)
			if err != nil {
				return err
			}
			if v.Deleted() {
				continue
			}
			if err := s.rec.CheckKey(k); err != nil {
				return err
			}
			cur, err := s.keyVersion(ctx, tx, k, "")
			if err != nil {
				return err
			}
			if at, ok := rotationDue(k.RotationPolicy, cur); ok && !now.Before(at) {
				work = append(work, due{k, cur})
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, w := range work {
		kv, err := s.rotated(w.k, w.cur)
		if err != nil {
			errs = append(errs, fmt.Errorf("rotating key %s of vault %s: %w", w.k.Name, w.k.VaultName, err))
			continue
		}
		stored := false
		err = s.store.Update(ctx, func(tx keyhold.Tx) error {
			stored = false
			k, err := tx.Key(ctx, w.k.VaultName, w.k.Name)
			if err != nil {
				return err
			}
			if err := s.rec.CheckKey(k); err != nil {
				return err
			}
			v, err := s.vault(ctx, tx, k.VaultName)
			if err != nil {
				return err
			}
			if k.Deleted() || v.Deleted() || k.CurrentVersion != w.cur.Version {
				return nil // deleted, or rotated by someone else meanwhile
			}
			at := s.now()
			kv.CreatedAt, kv.UpdatedAt = at, at
			if _, err := s.addVersion(ctx, tx, v, k.Name, kv, nil); err != nil {
				return err
			}
			stored = true
			return s.systemAudit(ctx, tx, v.TenantID, opRotateKey.Audit, s.KeyID(k.VaultName, k.Name, kv.Version),
				"rotation policy: "+policySummary(k.RotationPolicy))
		})
		if err == nil && stored {
			n++
			continue
		}
		if kv.Type == keyhold.KeyTypeRSAHSM {
			s.destroyTokenObjects([][]byte{kv.Material})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rotating key %s of vault %s: %w", w.k.Name, w.k.VaultName, err))
		}
	}
	return n, errors.Join(errs...)
}
