package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// sealingStore is the store a test wraps to watch or change some of its
// transactions: embedded in the wrapper, it passes the platform's record
// sealing (keyhold.SealingStore) through to the wrapped store, as the
// platform needs it at Open.
type sealingStore struct{ keyhold.Store }

func (s sealingStore) SetRecordSealer(rs keyhold.RecordSealer, refused func(context.Context, []keyhold.RefusedRecord)) {
	s.Store.(keyhold.SealingStore).SetRecordSealer(rs, refused)
}

func (s sealingStore) SealAccessRecords(ctx context.Context, audit func(keyhold.Tx, string, string) error) (int, int, error) {
	return s.Store.(keyhold.SealingStore).SealAccessRecords(ctx, audit)
}
