// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Version of the airbloc contract suite; bumped with every interface change.
library AirblocVersion {
    string internal constant VERSION = "0.1.0";
}
