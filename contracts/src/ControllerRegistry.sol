// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title ControllerRegistry
/// @notice Identity keepers (data controllers) allowed to create and act for wallet-less users.
///         Governed by an owner with two-step ownership transfer.
contract ControllerRegistry is Ownable2Step {
    mapping(address => bool) private _controllers;

    event ControllerAdded(address indexed controller);
    event ControllerRemoved(address indexed controller);

    error AlreadyController(address controller);
    error NotController(address controller);
    error ZeroAddress();

    constructor(address initialOwner) Ownable(initialOwner) {}

    function addController(address controller) external onlyOwner {
        if (controller == address(0)) revert ZeroAddress();
        if (_controllers[controller]) revert AlreadyController(controller);
        _controllers[controller] = true;
        emit ControllerAdded(controller);
    }

    function removeController(address controller) external onlyOwner {
        if (!_controllers[controller]) revert NotController(controller);
        _controllers[controller] = false;
        emit ControllerRemoved(controller);
    }

    function isController(address account) external view returns (bool) {
        return _controllers[account];
    }
}
