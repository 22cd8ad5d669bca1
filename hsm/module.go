// Package hsm drives the PKCS#11 token that holds RSA-HSM keys, for the
// key vault (vault) and the Managed HSM (mhsm) alike: one module registry
// per process, sessions, the private-key template, generation, import,
// unwrap (with the raw-RSA fallback for tokens that refuse OAEP
// parameters), transfer-blob import inside the token, and destruction.
//
// It lives apart from crypt because it performs no cryptography itself:
// it drives a device that does. crypt supplies the one piece of
// cryptography a token may lack (DecodeOAEP, see Token.Unwrap).
package hsm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS11Config names a PKCS#11 token: the module (shared library) that
// drives it, the token's label and the user PIN.
type PKCS11Config struct {
	Module     string // e.g. /usr/lib/softhsm/libsofthsm2.so
	TokenLabel string
	PIN        string
}

// modules shares one loaded and initialised module per path across the
// process. C_Initialize runs once per process and C_Finalize ends every
// session of the process, so there is ONE registry (here) for every
// package that opens a token: the module is finalised only when the last
// Token on its path closes.
var modules struct {
	sync.Mutex
	m map[string]*module
}

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[path]; ok {
		m.refs++
		return m.ctx, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: cannot load the PKCS#11 module %q: check the path and that it is a PKCS#11 library", path)
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, fmt.Errorf("hsm: initialising the PKCS#11 module %q: %w", path, err)
	}
	if modules.m == nil {
		modules.m = make(map[string]*module)
	}
	modules.m[path] = &module{ctx: ctx, refs: 1}
	return ctx, nil
}

func releaseModule(path string) error {
	modules.Lock()
	defer modules.Unlock()
	m, ok := modules.m[path]
	if !ok {
		return nil
	}
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(modules.m, path)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	return err
}
