package vault

import "strings"

// Repair records (rebuilt.go) live under their own prefix, one per
// version of a data object that repair wrote again and vouched for:
//
//	repairs/<data key>/<version id>.json
//
// A data key is data/<name> with no "/" in the name, so the data key of a
// repair record is its key's first two segments after repairs/, and the
// records of one data key share one prefix (a listing finds them all).
const repairsPrefix = "repairs/"

// PatternRepairs is every repair record, for IAM resources (infra): a
// role that reads data reads them too.
const PatternRepairs = repairsPrefix + "*"

// RepairRecordKey is the vault key of the repair record that vouches for
// version versionID of the data object dataKey.
func RepairRecordKey(dataKey, versionID string) string {
	return RepairRecordPrefix(dataKey) + versionID + ".json"
}

// RepairRecordPrefix is the prefix of every repair record of dataKey.
func RepairRecordPrefix(dataKey string) string { return repairsPrefix + dataKey + "/" }

// repairRecordData returns the data key a repair record's key names, or
// false for a key that is not a repair record's.
func repairRecordData(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, repairsPrefix+dataPrefix)
	if !ok {
		return "", false
	}
	name, file, ok := strings.Cut(rest, "/")
	if !ok || name == "" || !strings.HasSuffix(file, ".json") || len(file) == len(".json") {
		return "", false
	}
	return dataPrefix + name, true
}
