// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice An ERC-20 anyone can mint, for local networks and tests only.
contract TestToken is ERC20 {
    constructor() ERC20("airbloc test token", "ABLT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
