package report

// CheckSelfContained is checkSelfContained for the package's external
// tests.
var CheckSelfContained = checkSelfContained
