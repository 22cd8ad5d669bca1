package hsm

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// Monotonic counters kept in the token, outside the database: state the
// database's writer can't roll back with it (the BYOK generations,
// vault.byokToken). A counter is a private data object (CKO_DATA,
// CKA_TOKEN, CKA_PRIVATE: only a session logged in with the PIN reads or
// writes it) whose CKA_LABEL names it and whose CKA_VALUE is the count,
// 8 bytes big-endian, under CKA_APPLICATION counterApplication.
//
// Raising it creates an object with the new value and only then destroys
// the older ones, and a read takes the largest value among the objects
// of its label: a crash between the two steps leaves two objects, never
// none, so the count never falls (a token whose data objects can't be
// modified in place works the same). Within a process, raises of one
// counter take turns (counterMu); two processes raising the same counter
// at once may each keep their own object, and the larger still wins.

// counterApplication is the CKA_APPLICATION of Keyhold's counters.
const counterApplication = "keyhold counter v1"

// counterMu makes a counter's read-and-raise one step within a process.
var counterMu sync.Mutex

// Counter returns the value of the counter labelled label, or 0 if the
// token holds none.
func (t *Token) Counter(label string) (uint64, error) {
	var v uint64
	err := t.with(func(sh pkcs11.SessionHandle) error {
		var err error
		v, _, err = t.counterObjects(sh, label)
		return err
	})
	return v, err
}

// RaiseCounter sets the counter labelled label to v if v is larger than
// its value, and returns the value it has afterwards (v, or the larger
// one it had).
func (t *Token) RaiseCounter(label string, v uint64) (uint64, error) {
	counterMu.Lock()
	defer counterMu.Unlock()
	err := t.with(func(sh pkcs11.SessionHandle) error {
		cur, old, err := t.counterObjects(sh, label)
		if err != nil {
			return err
		}
		if cur >= v {
			v = cur
			return nil
		}
		var value [8]byte
		binary.BigEndian.PutUint64(value[:], v)
		if _, err := t.ctx.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, counterApplication),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, value[:]),
		}); err != nil {
			return fmt.Errorf("hsm: storing counter %q in the PKCS#11 token: %w", label, err)
		}
		for _, h := range old {
			if err := t.ctx.DestroyObject(sh, h); err != nil {
				return fmt.Errorf("hsm: removing counter %q's older value from the PKCS#11 token: %w", label, err)
			}
		}
		return nil
	})
	return v, err
}

// counterObjects returns the largest value among the counter objects
// labelled label, and their handles.
func (t *Token) counterObjects(sh pkcs11.SessionHandle, label string) (uint64, []pkcs11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, counterApplication),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return 0, nil, fmt.Errorf("hsm: searching the PKCS#11 token for counter %q: %w", label, err)
	}
	hs, _, err := t.ctx.FindObjects(sh, 16)
	if ferr := t.ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, nil, fmt.Errorf("hsm: searching the PKCS#11 token for counter %q: %w", label, err)
	}
	var top uint64
	for _, h := range hs {
		attrs, err := t.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return 0, nil, fmt.Errorf("hsm: reading counter %q in the PKCS#11 token: %w", label, err)
		}
		if len(attrs) != 1 || len(attrs[0].Value) != 8 {
			return 0, nil, fmt.Errorf("hsm: counter %q in the PKCS#11 token holds no 8-byte value: it was not written by Keyhold", label)
		}
		top = max(top, binary.BigEndian.Uint64(attrs[0].Value))
	}
	return top, hs, nil
}
