// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// Event-only registry: one log per anchored Merkle root, the root as an indexed topic
/// so anyone can find it with eth_getLogs. No storage: gas per batch is constant.
contract AnchorRegistry {
    event Anchored(bytes32 indexed root, address indexed anchorer, uint256 size);

    function anchor(bytes32 root, uint256 size) external {
        emit Anchored(root, msg.sender, size);
    }
}
