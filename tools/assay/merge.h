// Merging profiles: same sample types (type and unit, in order) and period
// type, as pprof requires. Mappings are matched by build id (else file name),
// size and offset, so profiles of different processes of one binary share
// them; addresses are rebased onto the first profile's mapping. Functions,
// locations and strings are deduplicated and renumbered; samples with the
// same locations and labels have their values summed.
#pragma once

#include <string>
#include <vector>

#include "proto/profile.pb.h"

namespace assay::cli {

namespace pb = perftools::profiles;

// `names` label the profiles in errors (Failure("NAME: ...") when one is not
// compatible with the first). At least one profile.
pb::Profile MergeProfiles(const std::vector<pb::Profile>& profiles,
                          const std::vector<std::string>& names);

}  // namespace assay::cli
