package sqlstore

// ResealRowsArrays is ResealRows' PostgreSQL statement, for the test of its
// plan.
const ResealRowsArrays = resealRowsArrays

// ListRowsQuery and EpochCountsRows are the statements of a re-key's
// walk and of the counts by epoch, for the tests of their plans.
var ListRowsQuery = listRowsQuery

const EpochCountsRows = epochCountsRows
