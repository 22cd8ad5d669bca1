package sqlstore

// ResealRowsArrays is ResealRows' PostgreSQL statement, for the test of its
// plan.
const ResealRowsArrays = resealRowsArrays
