// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface IERC20Min {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function transfer(address to, uint256 value) external returns (bool);
}

/// TEST STAND-IN for TRN's DEX precompile (0x...DDDD), which anvil cannot run. It exposes the
/// same Uniswap V2 Router01 functions the precompile does, with TRN's semantics where they
/// differ from Uniswap: `deadline` is a block number. Pools are constant-product with a 0.3%
/// fee, and the router holds the reserves itself (the real pallet keeps them per pair account).
contract DexRouterStandIn {
    mapping(bytes32 => uint256[2]) private reserves;

    event Swap(address indexed sender, uint256 amountIn, uint256 amountOut, address indexed to);

    modifier ensure(uint256 deadline) {
        require(deadline >= block.number, "DEX: EXPIRED");
        _;
    }

    function _key(address a, address b) private pure returns (bytes32, bool) {
        require(a != b, "DEX: IDENTICAL_ADDRESSES");
        return a < b ? (keccak256(abi.encode(a, b)), false) : (keccak256(abi.encode(b, a)), true);
    }

    function getReserves(address a, address b) public view returns (uint256 ra, uint256 rb) {
        (bytes32 k, bool flip) = _key(a, b);
        uint256[2] storage r = reserves[k];
        (ra, rb) = flip ? (r[1], r[0]) : (r[0], r[1]);
    }

    function _setReserves(address a, address b, uint256 ra, uint256 rb) private {
        (bytes32 k, bool flip) = _key(a, b);
        reserves[k] = flip ? [rb, ra] : [ra, rb];
    }

    function quote(uint256 amountA, uint256 reserveA, uint256 reserveB)
        public pure returns (uint256)
    {
        require(amountA > 0 && reserveA > 0 && reserveB > 0, "DEX: INSUFFICIENT");
        return (amountA * reserveB) / reserveA;
    }

    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        public pure returns (uint256)
    {
        require(amountIn > 0, "DEX: INSUFFICIENT_INPUT_AMOUNT");
        require(reserveIn > 0 && reserveOut > 0, "DEX: INSUFFICIENT_LIQUIDITY");
        uint256 withFee = amountIn * 997;
        return (withFee * reserveOut) / (reserveIn * 1000 + withFee);
    }

    function getAmountIn(uint256 amountOut, uint256 reserveIn, uint256 reserveOut)
        public pure returns (uint256)
    {
        require(amountOut > 0, "DEX: INSUFFICIENT_OUTPUT_AMOUNT");
        require(reserveIn > 0 && reserveOut > amountOut, "DEX: INSUFFICIENT_LIQUIDITY");
        return (reserveIn * amountOut * 1000) / ((reserveOut - amountOut) * 997) + 1;
    }

    function getAmountsOut(uint256 amountIn, address[] memory path)
        public view returns (uint256[] memory amounts)
    {
        require(path.length >= 2, "DEX: INVALID_PATH");
        amounts = new uint256[](path.length);
        amounts[0] = amountIn;
        for (uint256 i = 0; i < path.length - 1; i++) {
            (uint256 ri, uint256 ro) = getReserves(path[i], path[i + 1]);
            amounts[i + 1] = getAmountOut(amounts[i], ri, ro);
        }
    }

    function getAmountsIn(uint256 amountOut, address[] memory path)
        public view returns (uint256[] memory amounts)
    {
        require(path.length >= 2, "DEX: INVALID_PATH");
        amounts = new uint256[](path.length);
        amounts[path.length - 1] = amountOut;
        for (uint256 i = path.length - 1; i > 0; i--) {
            (uint256 ri, uint256 ro) = getReserves(path[i - 1], path[i]);
            amounts[i - 1] = getAmountIn(amounts[i], ri, ro);
        }
    }

    function addLiquidity(
        address tokenA,
        address tokenB,
        uint256 amountADesired,
        uint256 amountBDesired,
        uint256 amountAMin,
        uint256 amountBMin,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256 amountA, uint256 amountB, uint256 liquidity) {
        (uint256 ra, uint256 rb) = getReserves(tokenA, tokenB);
        if (ra == 0 && rb == 0) {
            (amountA, amountB) = (amountADesired, amountBDesired);
        } else {
            uint256 bOptimal = quote(amountADesired, ra, rb);
            if (bOptimal <= amountBDesired) {
                (amountA, amountB) = (amountADesired, bOptimal);
            } else {
                (amountA, amountB) = (quote(amountBDesired, rb, ra), amountBDesired);
            }
        }
        require(amountA >= amountAMin && amountB >= amountBMin, "DEX: INSUFFICIENT_AMOUNT");
        IERC20Min(tokenA).transferFrom(msg.sender, address(this), amountA);
        IERC20Min(tokenB).transferFrom(msg.sender, address(this), amountB);
        _setReserves(tokenA, tokenB, ra + amountA, rb + amountB);
        liquidity = amountA < amountB ? amountA : amountB; // no LP token in the stand-in
        to;
    }

    function _swap(uint256[] memory amounts, address[] memory path, address to) private {
        for (uint256 i = 0; i < path.length - 1; i++) {
            (uint256 ri, uint256 ro) = getReserves(path[i], path[i + 1]);
            _setReserves(path[i], path[i + 1], ri + amounts[i], ro - amounts[i + 1]);
        }
        IERC20Min(path[path.length - 1]).transfer(to, amounts[amounts.length - 1]);
        emit Swap(msg.sender, amounts[0], amounts[amounts.length - 1], to);
    }

    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        amounts = getAmountsOut(amountIn, path);
        require(amounts[amounts.length - 1] >= amountOutMin, "DEX: INSUFFICIENT_OUTPUT_AMOUNT");
        IERC20Min(path[0]).transferFrom(msg.sender, address(this), amounts[0]);
        _swap(amounts, path, to);
    }

    function swapTokensForExactTokens(
        uint256 amountOut,
        uint256 amountInMax,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        amounts = getAmountsIn(amountOut, path);
        require(amounts[0] <= amountInMax, "DEX: EXCESSIVE_INPUT_AMOUNT");
        IERC20Min(path[0]).transferFrom(msg.sender, address(this), amounts[0]);
        _swap(amounts, path, to);
    }
}
