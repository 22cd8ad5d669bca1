package http

import (
	"fmt"
	nethttp "net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// Sign-in throttling. Without it, wrong client secrets were checked at
// about 400 a second and users' passwords without limit. The token
// endpoint now counts wrong credentials per account (a tenant's client id
// or user name, whether or not it exists, so that a lockout tells nothing
// about which do) and per source address. Past a number of failures the
// account or source is locked out for a while, doubling with each further
// failure up to a cap, and every sign-in it tries meanwhile, with the right
// credentials too, is answered 429 with Retry-After and AADSTS50053, as
// Entra ID answers a locked account; the credentials are not even checked
// then, so a lockout costs the server nothing. A success clears its
// account's failures; a source's are forgotten an hour after its last
// failure, so that a stolen valid credential can't be used to reset them
// while spraying passwords across accounts.
//
// The counts are in memory, per server process: replicas behind one load
// balancer each keep their own, which multiplies the allowance by the
// number of replicas but still bounds it.

// SignInLimits configures sign-in throttling. Zero fields take the
// defaults.
type SignInLimits struct {
	// AccountFailures is how many wrong credentials one account may
	// receive before it is locked out (default 5); SourceFailures, how
	// many one IP address (an IPv6 /64) may send across accounts (default
	// 20).
	AccountFailures int
	SourceFailures  int
	// Lockout is the first lockout (default 1 minute); each further
	// failure doubles it, up to MaxLockout (default 15 minutes).
	Lockout    time.Duration
	MaxLockout time.Duration
}

// Defaults of SignInLimits.
const (
	DefaultAccountFailures = 5
	DefaultSourceFailures  = 20
	DefaultLockout         = time.Minute
	DefaultMaxLockout      = 15 * time.Minute
)

const (
	// forgetFailures: failures this old, with no lockout running, are
	// forgotten.
	forgetFailures = time.Hour
	// maxThrottled bounds the entries kept (about 100 bytes each), since
	// client ids and user names are the caller's choice.
	maxThrottled = 100_000
	// aadstsLocked is Entra ID's error number for a locked account or a
	// blocked source (IdsLocked).
	aadstsLocked = 50053
)

// throttle keeps the failure counts. It is safe for concurrent use.
type throttle struct {
	limits SignInLimits
	clock  keyhold.Clock

	mu      sync.Mutex
	entries map[string]*strikes
}

// strikes are the recent failures of one account or source.
type strikes struct {
	failures int
	last     time.Time // of the last failure
	until    time.Time // locked out until then
}

func newThrottle(l SignInLimits, clock keyhold.Clock) *throttle {
	if l.AccountFailures <= 0 {
		l.AccountFailures = DefaultAccountFailures
	}
	if l.SourceFailures <= 0 {
		l.SourceFailures = DefaultSourceFailures
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultLockout
	}
	if l.MaxLockout <= 0 {
		l.MaxLockout = DefaultMaxLockout
	}
	if clock == nil {
		clock = keyhold.SystemClock{}
	}
	return &throttle{limits: l, clock: clock, entries: map[string]*strikes{}}
}

// signIn is one sign-in attempt: its account and source keys, and the
// OAuth2 error code that a wrong credential answers with.
type signIn struct {
	account, source string
	badCode         string // keyhold.CodeInvalidClient or CodeInvalidGrant
}

// newSignIn names the attempt of kind ("app" or "user") for id in tenant,
// from r's remote address.
func newSignIn(r *nethttp.Request, kind, tenant, id, badCode string) signIn {
	return signIn{
		account: "acct " + kind + " " + strings.ToLower(keyhold.Clip(tenant)) + " " + strings.ToLower(clipKey(id)),
		source:  "src " + sourceKey(r.RemoteAddr),
		badCode: badCode,
	}
}

func clipKey(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// sourceKey is the remote address's IP, or its /64 for IPv6, where one
// client easily holds a whole /64.
func sourceKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// admit refuses the attempt, with Retry-After on w, while its account or
// source is locked out.
func (t *throttle) admit(w nethttp.ResponseWriter, a signIn) error {
	now := t.clock.Now()
	t.mu.Lock()
	var wait time.Duration
	who := ""
	for _, k := range []string{a.account, a.source} {
		if e := t.entries[k]; e != nil && now.Before(e.until) && e.until.Sub(now) > wait {
			wait, who = e.until.Sub(now), k
		}
	}
	t.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := fmt.Sprintf("the account is locked because of too many sign-ins with a wrong secret or password: retry after %d seconds", secs)
	if who == a.source {
		msg = fmt.Sprintf("sign-ins from this address are blocked because of too many wrong secrets or passwords: retry after %d seconds", secs)
	}
	return &keyhold.Error{Code: keyhold.CodeSignInLocked, Inner: a.badCode, Message: msg}
}

// record counts the outcome of an attempt that was admitted: a wrong
// credential (err with a.badCode) is a failure of its account and
// source; a success clears its account's failures.
func (t *throttle) record(a signIn, err error) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		delete(t.entries, a.account)
	case keyhold.ErrorCode(err) == a.badCode:
		t.fail(a.account, t.limits.AccountFailures, now)
		t.fail(a.source, t.limits.SourceFailures, now)
	}
}

// fail counts a failure of key, and locks it out once it has limit.
func (t *throttle) fail(key string, limit int, now time.Time) {
	e := t.entries[key]
	if e == nil {
		if len(t.entries) >= maxThrottled {
			t.prune(now)
		}
		e = &strikes{}
		t.entries[key] = e
	}
	if now.Sub(e.last) > forgetFailures && !now.Before(e.until) {
		e.failures = 0
	}
	e.failures++
	e.last = now
	if over := e.failures - limit; over >= 0 {
		lock := t.limits.MaxLockout
		if over < 30 && t.limits.Lockout<<over < lock {
			lock = t.limits.Lockout << over
		}
		e.until = now.Add(lock)
	}
}

// prune drops forgotten entries and, if the map is still full, arbitrary
// ones: the per-source limit still holds a flood of made-up accounts.
func (t *throttle) prune(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.last) > forgetFailures && !now.Before(e.until) {
			delete(t.entries, k)
		}
	}
	for k := range t.entries {
		if len(t.entries) < maxThrottled {
			break
		}
		delete(t.entries, k)
	}
}
