package platform

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// The data-plane requests whose integrity refusals are audited
// (auditDataTamper), each bounded on its own.
const (
	tamperRowRead    = "a row read"
	tamperRowWrite   = "a row write"
	tamperRowDelete  = "a row delete"
	tamperRowList    = "a row listing"
	tamperFileUpload = "a file upload"
	tamperFileRead   = "a file read"
)

// dataTamperEvery is how often, at most, the data plane audits the
// refusals of one kind of request (tamperRowRead…) for one environment's
// data, for a record that failed its integrity check.
const dataTamperEvery = time.Minute

// dataTamperLimit bounds the data plane's audit of integrity refusals. A
// record changed outside Keyhold (a BYOK tenant's state put back, say)
// refuses every read and write of the environment's data
// (CodeRecordIntegrity): the administrators must learn of it from the
// audit log, as of every other refusal (auditTamper), but an entry for
// each refused request would let whoever changed the record fill the log
// at the clients' request rate. So the first refusal of each
// (tenant, environment, request) is audited, and then at most one each
// dataTamperEvery; the entries in between are counted in the next one.
type dataTamperLimit struct {
	mu   sync.Mutex
	seen map[string]*dataTamperSeen
}

type dataTamperSeen struct {
	at         time.Time // when the last entry was written
	suppressed int       // refusals since, not audited
}

// due says whether a refusal of key at now is audited, and how many were
// refused unaudited before it.
func (l *dataTamperLimit) due(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]*dataTamperSeen{}
	}
	s := l.seen[key]
	if s != nil && now.Sub(s.at) < dataTamperEvery {
		s.suppressed++
		return false, 0
	}
	if s == nil {
		if len(l.seen) >= 4096 { // keep the map small: drop what has expired
			for k, v := range l.seen {
				if now.Sub(v.at) >= dataTamperEvery {
					delete(l.seen, k)
				}
			}
		}
		s = &dataTamperSeen{}
		l.seen[key] = s
	}
	n := s.suppressed
	s.at, s.suppressed = now, 0
	return true, n
}

// auditDataTamper audits err, if it refuses a record that failed its
// integrity check, as a refusal of what (tamperRowRead…) to the
// caller, within dataTamperLimit's bound. It runs after the request's
// transaction has ended: the entry is written in a transaction of its
// own (auditTamper).
func (p *Environments) auditDataTamper(ctx context.Context, id *keyhold.Identity, envID, what string, err error) {
	if !isTamper(err) {
		return
	}
	ok, suppressed := p.tamper.due(id.TenantID+"\x00"+envID+"\x00"+what, p.clock.Now())
	if !ok {
		return
	}
	what += " of environment " + keyhold.Clip(envID) + " by " + id.PrincipalID
	if suppressed > 0 {
		what += " (and " + strconv.Itoa(suppressed) + " more refused since the last entry)"
	}
	p.auditTamper(ctx, id.TenantID, envTarget(envID), what, err)
}
