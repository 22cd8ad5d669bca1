package keyhold

import (
	"context"
	"net/netip"
)

// Origin says where a request comes from, for a key vault's network rules.
// Internal marks a call the platform makes in-process on behalf of one of
// its own identities (an enterprise policy's managed identity): it has no
// client address, and passes a firewall only as a trusted service.
type Origin struct {
	IP       netip.Addr
	Internal bool
}

type originKey struct{}

// NewOriginContext returns a context carrying the request's origin.
func NewOriginContext(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin carried by ctx (the zero Origin if none).
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}
