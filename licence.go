package keyhold

import (
	"context"
	"strings"
	"time"
)

// Tenant licences. The spec (002, "Licensing requirements for customer
// managed key") requires the users of environments under a customer-managed
// key to hold one of a list of Microsoft 365 / Office 365 subscriptions;
// Keyhold models it per tenant: a tenant holds licences, and an
// environment of a tenant that holds none of Licences can't be linked to
// an enterprise policy.
//
// # Who manages them
//
// Keyhold has no operator identity of its own: the system tenant has no
// principals, and the bootstrap identity is a customer tenant's Global
// Administrator. Licences are what a tenant has bought, which in
// Microsoft 365 its Global (or Billing) Administrator manages; so a
// tenant's Global Administrator adds and removes them (LicenceService). A
// Power Platform or Dynamics 365 Administrator, who links environments,
// may list them but not grant itself one. The bootstrap tenant starts with
// BootstrapLicence, so that a new platform links out of the box.

// Licences are the licences that 002 accepts, by their canonical names.
var Licences = []string{
	"Microsoft 365 A5", "Microsoft 365 E5", "Microsoft 365 G5",
	"Office 365 A5", "Office 365 E5", "Office 365 G5",
	"Microsoft 365 A5 Compliance", "Microsoft 365 E5 Compliance", "Microsoft 365 F5 Compliance", "Microsoft 365 G5 Compliance",
	"Microsoft 365 F5 Security & Compliance",
	"Microsoft 365 A5 Information Protection and Governance", "Microsoft 365 E5 Information Protection and Governance",
	"Microsoft 365 F5 Information Protection and Governance", "Microsoft 365 G5 Information Protection and Governance",
	"Microsoft 365 A5 Insider Risk Management", "Microsoft 365 E5 Insider Risk Management",
	"Microsoft 365 F5 Insider Risk Management", "Microsoft 365 G5 Insider Risk Management",
}

// BootstrapLicence is the licence the bootstrap customer tenant starts
// with.
const BootstrapLicence = "Microsoft 365 E5"

// licenceKey folds a licence name for comparison: case, runs of spaces,
// and "and" for "&" don't matter.
func licenceKey(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.ReplaceAll(s, " & ", " and ")
}

// LicenceID is the URL-safe id of a licence name: lower case, words joined
// by "-", "&" spelled "and" ("microsoft-365-e5").
func LicenceID(name string) string {
	return strings.ReplaceAll(licenceKey(name), " ", "-")
}

// ParseLicence returns the canonical name of one of Licences, given its
// name (in any case and spacing) or its LicenceID. An unknown licence is
// CodeBadRequest, quoting it and listing the accepted ones.
func ParseLicence(s string) (string, error) {
	k := licenceKey(strings.ReplaceAll(s, "-", " "))
	for _, l := range Licences {
		if licenceKey(l) == k {
			return l, nil
		}
	}
	q := s
	if len(q) > 100 {
		q = q[:100] + "…"
	}
	return "", Errorf(CodeBadRequest, "licence %q is not one that customer-managed keys accept: use one of %s", q, strings.Join(Licences, "; "))
}

// Licence is one licence a tenant holds.
type Licence struct {
	TenantID string    `json:"tenantId"`
	Name     string    `json:"name"` // one of Licences
	AddedBy  string    `json:"addedBy"`
	AddedAt  time.Time `json:"addedAt"`
}

// LicenceTx is the part of a store transaction that holds tenant licences.
// Names compare case-insensitively.
type LicenceTx interface {
	// AddLicence stores l: CodeConflict if the tenant holds it already,
	// CodeNotFound if the tenant is unknown.
	AddLicence(ctx context.Context, l *Licence) error
	// RemoveLicence removes a tenant's licence (CodeNotFound if it holds
	// none of that name).
	RemoveLicence(ctx context.Context, tenantID, name string) error
	// ListLicences lists a tenant's licences, by name.
	ListLicences(ctx context.Context, tenantID string) ([]*Licence, error)
}

// LicenceService manages the caller's tenant's licences. Listing needs a
// platform administrator directory role; adding and removing, Global
// Administrator (CodeForbidden otherwise).
type LicenceService interface {
	ListLicences(ctx context.Context) ([]*Licence, error)
	// AddLicence adds one of Licences (its name or LicenceID), returning it
	// as stored; CodeBadRequest for another, CodeConflict if held already.
	AddLicence(ctx context.Context, name string) (*Licence, error)
	// RemoveLicence removes a licence the tenant holds (CodeNotFound
	// otherwise).
	RemoveLicence(ctx context.Context, name string) error
}
