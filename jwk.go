package keyhold

// JWK is one public key of a JSON Web Key Set (RFC 7517), as Entra ID
// serves them (here at /common/discovery/v2.0/keys): the platform's ES256 key
// that signs access tokens and webhook events.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// SigningKeySource serves the public keys that verify the platform's
// signatures (the platform does; the http package serves them).
type SigningKeySource interface {
	SigningKeys() []JWK
}
