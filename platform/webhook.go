package platform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// Webhook delivery of events. An event written while its tenant has a
// webhook is Pending (events.go); DeliverEvents claims due events one at a
// time (a lease, so replicas never post one event at once), posts each to
// the tenant's current webhook URL and records the outcome: a 2xx answer
// is Delivered; anything else is retried with exponential backoff
// (webhookBackoff) until webhookMaxAttempts, then Failed. Delivery is at
// least once: a receiver dedupes by the Keyhold-Event-Id header.
//
// The body is the event as the admin API lists it. It is signed with the
// platform's token-signing key (ES256), so no shared secret is stored:
// the Keyhold-Signature header is a JWT whose claims bind the body
// (body_sha256), the event id (jti), the receiving URL (aud) and the time
// (iat, exp: 5 minutes), and whose kid names the key in the JSON Web Key
// Set served at {issuer}/common/discovery/v2.0/keys.

// Webhook delivery parameters.
const (
	DefaultEventDeliveryInterval = 2 * time.Second
	webhookTimeout               = 10 * time.Second
	webhookLease                 = 2 * webhookTimeout // an attempt's claim
	webhookMaxAttempts           = 12                 // ~ a day of backoff
	webhookSignatureTTL          = 5 * time.Minute
)

// webhookBackoff is the wait after a failed attempt n (1-based): 30s,
// doubling, at most 4h.
func webhookBackoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < 4*time.Hour; i++ {
		d *= 2
	}
	return min(d, 4*time.Hour)
}

// NewWebhookClient returns the client that posts events to webhooks:
// every connection goes through policy (nil: egress.Default(), public
// addresses only), roots verify the receivers' certificates (nil: the
// system's), a 10 s timeout per attempt, and no redirects: a signed event
// goes to the URL the tenant set or nowhere (a 3xx answer is a failed
// attempt), so a redirect can't lead it anywhere the policy would refuse.
func NewWebhookClient(roots *x509.CertPool, policy *egress.Policy) *http.Client {
	if policy == nil {
		policy = egress.Default()
	}
	return policy.Client(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, webhookTimeout, 0)
}

// webhookClaims are the claims of a Keyhold-Signature JWT.
type webhookClaims struct {
	jwt.RegisteredClaims
	BodySHA256 string `json:"body_sha256"` // base64url, no padding
}

// DeliverEvents posts every event that is due to its tenant's webhook and
// returns how many it delivered. It runs as the platform.
func (p *Events) DeliverEvents(ctx context.Context) (int, error) {
	delivered := 0
	for ctx.Err() == nil {
		var ev *keyhold.Event
		var hook string
		err := p.store.Update(ctx, func(tx keyhold.Tx) error {
			now := p.clock.Now().UTC()
			var err error
			if ev, err = tx.ClaimEventDelivery(ctx, now, now.Add(webhookLease)); err != nil {
				return err
			}
			s, err := tx.TenantSettings(ctx, ev.TenantID)
			hook = s.WebhookURL
			return err
		})
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return delivered, nil
		} else if err != nil {
			return delivered, err
		}
		var postErr error
		if hook == "" {
			postErr = fmt.Errorf("the tenant removed its webhook")
			ev.Attempts = webhookMaxAttempts // nowhere to go: don't retry
		} else {
			postErr = p.postEvent(ctx, hook, ev)
		}
		if ctx.Err() != nil {
			return delivered, ctx.Err() // the lease runs out and another attempt follows
		}
		now := p.clock.Now().UTC()
		switch {
		case postErr == nil:
			ev.Delivery, ev.DeliveredAt, ev.LastError = keyhold.DeliveryDelivered, now, ""
			delivered++
		case ev.Attempts >= webhookMaxAttempts:
			ev.Delivery, ev.LastError = keyhold.DeliveryFailed, postErr.Error()
			p.log.WarnContext(ctx, "gave up delivering an event to the tenant's webhook", "event", ev.ID, "tenant", ev.TenantID, "attempts", ev.Attempts, "err", postErr)
		default:
			ev.LastError, ev.NextAttemptAt = postErr.Error(), now.Add(webhookBackoff(ev.Attempts))
		}
		p.m.webhooks.WithLabelValues(result(postErr)).Inc()
		if err := p.store.Update(ctx, func(tx keyhold.Tx) error { return tx.UpdateEventDelivery(ctx, ev) }); err != nil {
			return delivered, err
		}
	}
	return delivered, ctx.Err()
}

// postEvent posts ev to hook, signed. Any answer but 2xx is an error that
// names the status code, and nothing the receiver sent: the error is
// shown to the tenant (lastError), and a receiver the tenant chose may be
// a service only the server can reach, whose answer is not the tenant's
// to read.
func (p *Events) postEvent(ctx context.Context, hook string, ev *keyhold.Event) error {
	body, err := json.Marshal(ev.View(false))
	if err != nil {
		return err
	}
	sig, err := p.signWebhook(hook, strconv.FormatInt(ev.ID, 10), body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Keyhold-Webhook/1")
	req.Header.Set("Keyhold-Event-Id", strconv.FormatInt(ev.ID, 10))
	req.Header.Set("Keyhold-Event-Kind", ev.Kind)
	req.Header.Set("Keyhold-Signature", sig)
	resp, err := p.hookClient.Do(req)
	if err != nil {
		p.log.InfoContext(ctx, "posting an event to a webhook failed", "event", ev.ID, "tenant", ev.TenantID, "err", err)
		return deliveryError(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	// The status code and its standard text, not resp.Status: the reason
	// phrase is the receiver's too.
	return fmt.Errorf("the webhook answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}

// deliveryError is what a tenant is shown of a request that got no HTTP
// answer: the policy's refusal, a timeout, a refused certificate or a
// failed connection, said in Keyhold's words or the TLS and network
// stack's, which hold no byte the remote side sent; anything else (such as
// a malformed answer, which Go's error would quote) only by its kind. The
// full error goes to the server's log.
func deliveryError(err error) error {
	var refused *egress.RefusedError
	var certInvalid x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &refused):
		return refused
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Errorf("the webhook did not answer within %s", webhookTimeout)
	case errors.As(err, &verify) || errors.As(err, &certInvalid) || errors.As(err, &unknownCA) || errors.As(err, &hostname):
		return fmt.Errorf("the webhook's TLS certificate was refused: %s", certReason(err))
	case errors.As(err, &dns):
		return fmt.Errorf("the webhook's host %q could not be resolved", dns.Name)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("could not connect to the webhook: %v", op.Err)
	}
	return errors.New("the webhook's answer was not a valid HTTP response (details in the server's log)")
}

// certReason is why a certificate was refused, in the x509 package's
// words (which quote names from the certificate, not the connection's
// other bytes).
func certReason(err error) string {
	var certInvalid x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return "certificate signed by unknown authority (an operator can trust its CA with --webhook-ca-file)"
	case errors.As(err, &hostname):
		return hostname.Error()
	case errors.As(err, &certInvalid):
		return certInvalid.Error()
	}
	return "certificate verification failed"
}

// signWebhook returns the Keyhold-Signature JWT of a body sent to hook.
func (p *Events) signWebhook(hook, eventID string, body []byte) (string, error) {
	now := p.clock.Now().Truncate(time.Second)
	sum := sha256.Sum256(body)
	claims := webhookClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: p.issuer, Audience: jwt.ClaimStrings{hook}, ID: eventID,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(webhookSignatureTTL)),
		},
		BodySHA256: base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = p.signingKID()
	t.Header["typ"] = "keyhold-event+jwt"
	return t.SignedString(p.signer)
}

// SigningKeys returns the public key set that verifies the platform's
// tokens and webhook signatures.
func (p *Events) SigningKeys() []keyhold.JWK {
	x, y := p.signerXY()
	return []keyhold.JWK{{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: p.signingKID(), Use: "sig", Alg: "ES256"}}
}

// signerXY returns the signing key's coordinates, base64url, 32 bytes each.
func (p *core) signerXY() (string, string) {
	pub, err := p.signer.PublicKey.Bytes() // 0x04 | X | Y
	if err != nil {
		// P-256 keys always encode; an error means a broken key.
		panic("platform: encoding the token-signing public key: " + err.Error())
	}
	x, y := new(big.Int).SetBytes(pub[1:33]), new(big.Int).SetBytes(pub[33:])
	return base64.RawURLEncoding.EncodeToString(x.FillBytes(make([]byte, 32))), base64.RawURLEncoding.EncodeToString(y.FillBytes(make([]byte, 32)))
}

// signingKID is the RFC 7638 thumbprint of the signing key: stable, and
// derived from the public key alone.
func (p *core) signingKID() string {
	x, y := p.signerXY()
	// The members in lexicographic order, no spaces, as RFC 7638 requires.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RunEventDelivery calls DeliverEvents every interval (default
// DefaultEventDeliveryInterval) until ctx ends.
func (p *Events) RunEventDelivery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultEventDeliveryInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := p.DeliverEvents(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("delivering events to webhooks", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
